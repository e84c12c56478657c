"""GET /v1/models: the models this deployment can serve, in OpenAI's list shape."""
from flask import Blueprint, current_app

from app.jsonio import json_response


def _model(model_id: str, provider: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": provider}


def blueprint(prefix: str) -> Blueprint:
    bp = Blueprint(f"models{prefix.replace('/', '_')}", __name__, url_prefix=prefix)

    @bp.get("/models")
    def list_models():
        """Every model of every live provider (built-in list plus the configured extras)."""
        gateway = current_app.extensions["gateway"]
        data = [_model(model, provider, gateway.started) for model, provider in gateway.router.models()]
        return json_response({"object": "list", "data": data})

    @bp.get("/models/<path:model_id>")
    def retrieve_model(model_id: str):
        """One model, when a live provider serves it."""
        gateway = current_app.extensions["gateway"]
        for model, provider in gateway.router.models():
            if model == model_id:
                return json_response(_model(model, provider, gateway.started))
        route = gateway.router.route(model_id)  # raises the explanatory 404 for unknown names
        return json_response(_model(model_id, route.client.name, gateway.started))

    return bp
