"""Hotel registrations: metrics, ID data quality, watch-list hits, upload compliance."""

from __future__ import annotations

from datetime import datetime, timedelta

import faust

from models import topics
from models.schemas import IdType
from models.topics import MessageKind
from processors.agents.watchlists import Watchlists
from processors.context import Context
from processors.rules import compliance, metrics, watch_alerts
from processors.rules.idnumber import check_id


def register(ctx: Context, wl: Watchlists) -> None:
    app, ws = ctx.app, ctx.settings.watchlist
    hotels = ctx.struct_table("hotel-state", compliance.HotelState)
    late_cooldown = ctx.table("late-upload-cooldown")
    checks = ctx.periodic_check(topics.KAFKA_HOTEL_TICKS, 60.0, lambda now: [
        h for h, st in hotels.items() if compliance.silence(st, h, now)[1]])

    def late_again(hotel: str, at: datetime) -> bool:
        """At most one late-upload alert per hotel per hour."""
        last = late_cooldown.get(hotel.encode())
        if last and at - datetime.fromisoformat(last.decode()) < timedelta(hours=1):
            return True
        late_cooldown[hotel.encode()] = at.isoformat().encode()
        return False

    @app.agent(ctx.event_topics[MessageKind.REGISTRATION], name="registrations")
    async def registrations(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            reg = await ctx.decode_sealed(MessageKind.REGISTRATION, key, raw)  # opened here, for matching only
            if reg is None:
                continue
            ctx.sink().add(metrics.registration_points(reg, ws.late_upload_s))
            at = reg.ingested_at or reg.checkin_at
            if reg.id_type is IdType.RESIDENT_ID and not check_id(reg.id_number, at.date()).valid:
                ctx.sink().add(metrics.data_quality_points("hotel_id", reg.hotel_id, "invalid-id", at))
            await wl.replica.ready.wait()
            subject = watch_alerts.person_subject(reg)
            matches = wl.replica.persons.match(reg.id_number, reg.guest_name, reg.birth_date, reg.nationality,
                                               reg.checkin_at)
            async for m, _, sid in wl.hits("persons", matches, lambda m: subject, reg.hotel_id, reg.checkin_at):
                await ctx.send_alerts([watch_alerts.person_alert(reg, m, sid)])
            state, alerts = compliance.registered(hotels.get(reg.hotel_id), reg.hotel_id, reg.checkin_at)
            hotels.set(reg.hotel_id, state)
            await ctx.send_alerts(alerts)
            delay = (at - reg.checkin_at).total_seconds()
            if delay > ws.late_upload_s and not late_again(reg.hotel_id, at):
                await ctx.send_alerts([compliance.late_upload_alert(reg.hotel_id, reg.registration_id, delay, at)])

    @app.agent(checks, name="hotel-silence")
    async def hotel_silence(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            hotel = key.decode()
            if hotel not in hotels:
                continue
            state, alerts = compliance.silence(hotels.get(hotel), hotel, datetime.fromisoformat(raw.decode()))
            if alerts:
                hotels.set(hotel, state)
                await ctx.send_alerts(alerts)
