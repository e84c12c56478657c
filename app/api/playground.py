"""GET /: the playground page (to be written)."""
from flask import Blueprint

bp = Blueprint("playground", __name__)
