"""The boundaries between the apps, read from the code itself: imports and migrations point one
way only, the stand-ins never reach production, and each Celery task name is written once.

    standins -> gateway_api -> console -> webhooks -> batching -> evm_chain -> payouts -> payments
        -> integrations -> pgp_project (the kernel, its outbox included)

A higher layer may use any lower one; nothing points back up. The root URLconf is the one
composition root that names an app's view, and is allowed to. A chain adapter (evm_chain) is
reached only through the chain port, by the class path PGP_CHAINS names: no production module
outside it imports it or speaks of what only its chains have.
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from django.db.migrations.loader import MigrationLoader

from ..conftest import PROJECT_ROOT

# The gateway's API sits on top of the console (it reads the console's statements; the console
# never knows it), below the stand-ins (the demo makes its keys).
LAYERS = (
    "standins",
    "gateway_api",
    "console",
    "webhooks",
    "batching",
    "evm_chain",
    "payouts",
    "payments",
    "integrations",
    "pgp_project",
)
COMPOSITION_ROOT = "pgp_project.urls"
# Django app labels per layer, for the migration graph (the kernel's app is "operations").
APP_LAYERS = {
    "standins": 0,
    "gateway_api": 0.5,
    "console": 1,
    "webhooks": 1.5,
    "batching": 2,
    "evm_chain": 2.5,
    "payouts": 3,
    "payments": 4,
    "operations": 6,
    "outbox": 6,  # the kernel's outbox
}


@pytest.fixture(scope="module")
def import_graph() -> grimp.ImportGraph:
    graph = grimp.build_graph(*LAYERS)
    for imported in graph.find_modules_directly_imported_by(COMPOSITION_ROOT):
        graph.remove_import(importer=COMPOSITION_ROOT, imported=imported)
    return graph


def test_no_import_points_back_up_the_layers(import_graph: grimp.ImportGraph) -> None:
    illegal = import_graph.find_illegal_dependencies_for_layers(layers=LAYERS)
    described = sorted(
        f"{dependency.importer} -> {dependency.imported}: "
        + "; ".join(f"{sorted(route.heads)} ... {sorted(route.tails)}" for route in dependency.routes)
        for dependency in illegal
    )
    assert not illegal, "imports that point back up:\n" + "\n".join(described)


def test_production_code_never_imports_the_stand_ins(import_graph: grimp.ImportGraph) -> None:
    importers = {
        importer
        for module in import_graph.find_children("standins") | {"standins"}
        for importer in import_graph.find_modules_that_directly_import(module)
    }
    assert {m for m in importers if not m.startswith("standins")} == set()


def test_the_kernel_knows_no_domain_app_and_no_provider(import_graph: grimp.ImportGraph) -> None:
    for kernel_module in import_graph.find_descendants("pgp_project") - {COMPOSITION_ROOT}:
        for imported in import_graph.find_modules_directly_imported_by(kernel_module):
            assert imported.split(".")[0] == "pgp_project", f"{kernel_module} imports {imported}"


def test_migrations_depend_only_down_the_layers() -> None:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    checked = 0
    for (app, name), migration in loader.disk_migrations.items():
        if app not in APP_LAYERS:
            continue
        for dependency_app, _ in migration.dependencies:
            if dependency_app in APP_LAYERS:
                assert APP_LAYERS[dependency_app] >= APP_LAYERS[app], f"{app}.{name} depends on {dependency_app}"
        checked += 1
    assert checked >= len(APP_LAYERS)


def settings_as_seen_by(module: str, **env: str) -> dict:
    """INSTALLED_APPS and the adapter maps of a settings module, read in a fresh process."""
    script = (
        "import json, django; from django.conf import settings; django.setup(); print(json.dumps({"
        "'apps': settings.INSTALLED_APPS, "
        "'exchanges': {name: entry['adapter'] for name, entry in settings.PGP_EXCHANGES.items()}, "
        "'chains': {name: chain['adapter'] for name, chain in settings.PGP_CHAINS.items()}}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": module, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_settings_never_install_the_stand_ins(tmp_path: Path) -> None:
    production = settings_as_seen_by(
        "pgp_project.settings.production",
        DJANGO_SECRET_KEY="x" * 50,
        NOWPAYMENTS_IPN_SECRET="secret",
        DJANGO_ALLOWED_HOSTS="payouts.example.com",
        DATABASE_URL="postgres://pgp@127.0.0.1:5432/pgp_settings_only",  # named, never connected to
    )
    assert "standins" not in production["apps"]
    assert not [
        path for path in [*production["exchanges"].values(), *production["chains"].values()] if "standins" in path
    ]
    # ... while the local and test settings do, so the demo and the tests have their stand-ins.
    for module in ("pgp_project.settings.local", "pgp_project.settings.test"):
        assert "standins" in settings_as_seen_by(module, PGP_VAR_DIR=str(tmp_path))["apps"]


def test_each_task_name_is_written_once_in_production_code() -> None:
    from pgp_project.celery import app as celery_app

    celery_app.loader.import_default_modules()
    ours = {
        name
        for name in celery_app.tasks
        if name.split(".")[0] in {"batching", "payouts", "operations", "webhooks", "gateway_api"}
    }
    assert len(ours) >= 6
    literals: dict[str, int] = dict.fromkeys(ours, 0)
    for package in ("pgp_project", "payments", "payouts", "batching", "integrations", "webhooks", "gateway_api"):
        for path in Path(PROJECT_ROOT, package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in literals:
                    literals[node.value] += 1
    assert literals == dict.fromkeys(ours, 1)


# The EVM chain adapter's package, and the registries that declare every chain's address format
# and assets, including chains we never hold (the exchange pays clients there).
CHAIN_ADAPTERS = ("evm_chain",)
CHAIN_REGISTRIES = ("integrations/assets.py", "integrations/addresses.py")
PRODUCTION_PACKAGES = (
    "pgp_project",
    "integrations",
    "payments",
    "payouts",
    "batching",
    "console",
    "webhooks",
    "gateway_api",
)
# What only EVM chains have. "ETH" the asset (what NOWPayments pays us, what a conversion
# sells) is a business asset named in the asset registry, not a chain concept.
EVM_ONLY = re.compile(r"\b(gas|gwei|wei|nonces?|EvmNode|EIP-?1559)\b|\b0x[0-9a-fA-F]", re.IGNORECASE)


def test_no_production_module_outside_an_adapter_imports_one(import_graph: grimp.ImportGraph) -> None:
    importers = {
        importer
        for adapter in CHAIN_ADAPTERS
        for module in import_graph.find_children(adapter) | {adapter}
        for importer in import_graph.find_modules_that_directly_import(module)
    }
    outside = {m for m in importers if not m.startswith((*CHAIN_ADAPTERS, "standins"))}
    assert outside == set(), f"modules outside the chain adapters import them: {sorted(outside)}"


def test_no_production_module_outside_an_adapter_names_an_evm_only_concept() -> None:
    found = []
    for package in PRODUCTION_PACKAGES:
        for path in sorted(Path(PROJECT_ROOT, package).rglob("*")):
            relative = path.relative_to(PROJECT_ROOT).as_posix()
            if path.suffix not in (".py", ".html") or "/migrations/" in relative or relative in CHAIN_REGISTRIES:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if EVM_ONLY.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert found == [], "EVM-only concepts outside the EVM adapter:\n" + "\n".join(found)


# Everything but the tests: the apps, the kernel, the stand-ins and benchmarks, the entry points.
SOURCE_PACKAGES = (*LAYERS, "benchmarks")
SOURCE_FILES = ("manage.py", "gunicorn.conf.py", "flowerconfig.py")


def test_one_database_engine_and_no_branch_on_it() -> None:
    """The money rules are written once, in PostgreSQL's SQL: no module asks which database it is
    on (connection.vendor), and none names SQLite."""
    paths = [path for package in SOURCE_PACKAGES for path in Path(PROJECT_ROOT, package).rglob("*.py")]
    paths += [Path(PROJECT_ROOT, name) for name in SOURCE_FILES]
    assert len(paths) > 100
    offending = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}"
        for path in paths
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\.vendor\b|sqlite", line, re.IGNORECASE)
    ]
    assert not offending, "\n".join(offending)
