from services.auditor.app import create_app
from shared.config import load_settings
from shared.service import run_service

run_service(load_settings("auditor", default_port=8083), create_app)
