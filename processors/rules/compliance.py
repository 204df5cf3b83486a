"""Hotel upload compliance: registrations must be uploaded in real time."""

from __future__ import annotations

from datetime import datetime

from models.schemas import Alert, AlertState, Severity


def late_upload_alert(hotel_id: str, registration_id: str, delay_s: float, at: datetime) -> Alert:
    return Alert(alert_id=f"hotel-late-upload:{hotel_id}:{at:%Y%m%d%H}", type="hotel-late-upload",
                 severity=Severity.WARNING, state=AlertState.FIRING, device_id=hotel_id, since=at, at=at,
                 summary=f"hotel {hotel_id} uploaded a registration {delay_s / 60:.0f} min after check-in",
                 details={"registration_id": registration_id, "delay_s": round(delay_s, 1)})
