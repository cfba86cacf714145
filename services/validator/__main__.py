from services.validator.app import create_app
from shared.config import load_settings
from shared.service import run_service

run_service(load_settings("validator", default_port=8081), create_app)
