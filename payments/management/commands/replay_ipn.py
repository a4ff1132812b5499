"""Re-verify, and replay, the kept body of an IPN refused for its signature (payments/unverified_ipns.py).

    manage.py replay_ipn <event id>          which documented form, if any, now verifies it
    manage.py replay_ipn <event id> --apply  if one does, record it through the intake, as if it
                                             had just arrived (a payment recorded meanwhile by a
                                             retry is found a duplicate; nothing is done twice)

For the case the kept bodies exist for: NOWPayments signed in a way the canonical forms did not
reproduce, genuine payments were refused, and the forms have been fixed since.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.nowpayments_signature import matching_form
from payments.intake import IncomingIpn, receive_ipn
from payments.models import PaymentEvent, UnverifiedIpnBody


class Command(BaseCommand):
    help = "Re-verify the kept body of an IPN refused for its signature; with --apply, record it if it now verifies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event_id", type=int, help="the refusal's PaymentEvent id (admin: IPN events)")
        parser.add_argument("--apply", action="store_true", help="record it through the intake if it verifies")

    def handle(self, *args: object, event_id: int, apply: bool, **options: object) -> None:
        try:
            kept = UnverifiedIpnBody.objects.select_related("event").get(event_id=event_id)
        except UnverifiedIpnBody.DoesNotExist:
            if PaymentEvent.objects.filter(pk=event_id).exists():
                raise CommandError(
                    f"event {event_id} has no kept body (not a signature refusal kept for replay, or pruned)"
                ) from None
            raise CommandError(f"no IPN event {event_id}") from None
        raw_body = kept.body.encode("utf-8")
        form = matching_form(raw_body, kept.signature, settings.NOWPAYMENTS_IPN_SECRET)
        if form is None:
            raise CommandError(f"event {event_id}: the signature still matches no documented form")
        self.stdout.write(f"event {event_id}: the signature matches the {form} form")
        if not apply:
            self.stdout.write("not recorded (run again with --apply to record it)")
            return
        answer = receive_ipn(
            IncomingIpn(raw_body=raw_body, signature=kept.signature, remote_addr=kept.event.remote_addr)
        )
        self.stdout.write(f"replayed: HTTP {answer.http_status} {answer.body}")
        if answer.http_status != 200:
            raise CommandError(f"event {event_id}: the intake answered {answer.http_status}")
