from services.loader.app import create_app
from shared.config import load_settings
from shared.service import run_service

run_service(load_settings("loader", default_port=8082), create_app)
