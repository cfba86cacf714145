from services.gateway.app import create_app
from shared.config import load_settings
from shared.service import run_service

run_service(load_settings("gateway", default_port=8080), create_app)
