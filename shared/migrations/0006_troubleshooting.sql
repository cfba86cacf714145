-- Troubleshooting: find the imports that wrote a row by its key (debug record).
CREATE INDEX load_lineage_keys ON tidegate.load_lineage USING gin (keys jsonb_path_ops);
CREATE INDEX row_images_keys ON tidegate.row_images USING gin (keys jsonb_path_ops);
CREATE INDEX load_lineage_table ON tidegate.load_lineage (target_table);
