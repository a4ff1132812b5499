"""Write two years of a busy gateway into a freshly migrated database, at bulk-insert speed,
for timing the console at scale (benchmarks/console_at_scale.py). See standins/scale_seed.py.

    createdb -h 127.0.0.1 -U postgres pgp_scale
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pgp_scale .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pgp_scale .venv/bin/python manage.py seed_scale
    ... manage.py seed_scale --scale 0.01      # a hundredth: 100k payments, for a quick look
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from standins.scale_seed import DatabaseNotEmpty, SeedSize, analyze, describe, seed


class Command(BaseCommand):
    help = "Seed a fresh database with two years of a busy gateway (10M payments by default) for timing the console."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default size (e.g. 0.01)")
        parser.add_argument("--payments", type=int, help="payments (default 10,000,000 x scale)")
        parser.add_argument("--ipn-events", type=int, help="IPN events (default 20,000,000 x scale)")
        parser.add_argument("--conversions", type=int, help="conversions (default 50,000 x scale)")
        parser.add_argument("--threshold-payouts", type=int, help="threshold payouts, about (default 180,000 x scale)")
        parser.add_argument("--instant-payouts", type=int, help="instant payouts, about (default 20,000 x scale)")
        parser.add_argument("--clients", type=int, help="clients, a tenth of them instant (default 300)")
        parser.add_argument(
            "--force", action="store_true", help="add a data set to a database that already holds payments"
        )

    def handle(self, *args: object, **options: object) -> None:
        scale = options["scale"]
        assert isinstance(scale, float)
        if not 0 < scale <= 10:
            raise CommandError("--scale must be above 0 and at most 10")
        try:
            size = SeedSize.for_scale(
                scale,
                payments=_count(options["payments"]),
                ipn_events=_count(options["ipn_events"]),
                conversions=_count(options["conversions"]),
                threshold_payouts=_count(options["threshold_payouts"]),
                instant_payouts=_count(options["instant_payouts"]),
                clients=_count(options["clients"]),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"seeding {describe(size)}")
        try:
            seed(size, force=bool(options["force"]), progress=self.stdout.write)
        except DatabaseNotEmpty as exc:
            raise CommandError(str(exc)) from exc
        analyze(progress=self.stdout.write)


def _count(value: object) -> int | None:
    if value is None:
        return None
    assert isinstance(value, int)
    if value < 1:
        raise CommandError("counts must be at least 1")
    return value
