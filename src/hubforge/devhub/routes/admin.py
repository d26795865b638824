"""The devhub's own routes: health (open, it tells nothing), fault injection and the request log (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..deps import DevHubState, get_state, require_admin
from ..models import FaultSpec

router = APIRouter(prefix="/devhub")
ADMIN_PATHS = ("/devhub/faults", "/devhub/log", "/devhub/health")


@router.get("/health")
def health():
    return {"ok": True}


@router.post("/faults", dependencies=[Depends(require_admin)])
def add_fault(fault: FaultSpec, state: DevHubState = Depends(get_state)):
    with state.lock:
        state.faults.append(fault)
    return {"ok": True}


@router.delete("/faults", dependencies=[Depends(require_admin)])
def clear_faults(state: DevHubState = Depends(get_state)):
    with state.lock:
        state.faults.clear()
    return {"ok": True}


@router.get("/log", dependencies=[Depends(require_admin)])
def request_log(state: DevHubState = Depends(get_state)):
    return [list(item) for item in list(state.request_log)]
