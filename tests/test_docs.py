"""The documentation stays true to the code: the configuration reference is generated from `Settings`,
every setting and environment variable the code reads is described, every route and function is listed,
links and module paths resolve, the manifests shown in the docs validate, and README.md stays a front page.

Nothing is faked: the checks read the real pages, the real `Settings`, `function_app.py` and the
validators the product uses."""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from shared.adapters.key_vault import Secrets
from shared.config import reference
from shared.config.settings import Setting, Settings, described
from shared.core import kube_manifests, manifests
from shared.core.aca_kinds import ACA_READERS
from shared.core.manifests import API_VERSION, SYNOSCD_API_VERSION, PROJECT_KIND, load_targets
from tests.test_infra import RecordingEnv

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
"""The documentation a newcomer reads."""
CHECKED = [*PAGES, ROOT / "infra" / "README.md", ROOT / "bench" / "RESULTS.md"]
"""Pages whose links and module paths must resolve."""
README_LIMIT = 12 * 1024
READS = ("text", "path", "flag", "number", "whole", "names")
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

_FENCE = re.compile(r"^ *```.*?^ *```", re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)


def _prose(page: Path) -> str:
    """The page without its fenced code blocks."""
    return _FENCE.sub("", page.read_text(encoding="utf-8"))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in _HEADING.findall(_prose(page))}


# --- the configuration reference ---------------------------------------------------------------

def test_configuration_page_is_the_generated_reference():
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert page == reference.render(), f"docs/configuration.md differs from the settings; regenerate it: " \
                                       f"{reference.REGENERATE}"


def test_every_setting_declares_its_variable_and_a_one_line_description():
    seen: set[str] = set()
    for item in dataclasses.fields(Settings):
        setting = item.metadata.get("setting")
        assert isinstance(setting, Setting), \
            f"Settings.{item.name} has no Setting: declare it with _setting(VARIABLE, description, group, default)"
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", setting.env), f"Settings.{item.name}: bad variable {setting.env!r}"
        assert setting.env not in seen, f"{setting.env} is declared twice"
        seen.add(setting.env)
        text = setting.description.strip()
        assert text and "\n" not in text and text.endswith("."), \
            f"Settings.{item.name} ({setting.env}) needs a one-line description ending with a full stop"
        assert setting.group.strip(), f"Settings.{item.name} ({setting.env}) needs a group"
        assert setting.read in READS, f"Settings.{item.name}: read must be one of {READS}"
        assert not setting.secret or isinstance(item.default, str), f"{setting.env}: a secret name needs a default"


def test_from_env_reads_exactly_the_declared_variables():
    env = RecordingEnv()
    Settings.from_env(env)
    assert set(env.asked) == {setting.env for _, setting in described()}


def test_every_environment_variable_the_code_reads_is_documented():
    documented = {setting.env for _, setting in described()}
    documented |= {name.strip() for v in reference.OTHER_VARIABLES for name in v.name.split(",")}
    read = re.compile(r"""\b(?:environ|env)(?:\.get\(\s*|\[\s*)["']([A-Za-z_][A-Za-z0-9_]*)["']""")
    found: dict[str, str] = {}
    for path in [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]:
        for name in read.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, str(path.relative_to(ROOT)))
    assert "DRIFTLESS_QUIET" in found and "AzureWebJobsStorage" in found   # the scan sees what it should
    missing = {name: where for name, where in found.items() if name not in documented}
    assert not missing, f"environment variables read but not documented (add them to Settings or to " \
                        f"shared/config/reference.py OTHER_VARIABLES, then regenerate): {missing}"


@pytest.mark.parametrize("item, setting", [(i, s) for i, s in described() if s.secret],
                         ids=lambda value: getattr(value, "env", None) or "")
def test_documented_secret_fallback_is_the_variable_the_vault_adapter_reads(item, setting):
    variable = reference.fallback_variable(item.default)
    secrets = Secrets(Settings.from_env({}), env={variable: "from-the-environment"})
    assert secrets.get(item.default) == "from-the-environment"
    assert f"`{variable}`" in (DOCS / "configuration.md").read_text(encoding="utf-8")


def test_dev_only_settings_are_marked_not_deployed():
    dev_only = [s.env for _, s in described() if not s.deployed]
    assert {"DRIFTLESS_ARM_ENDPOINT", "DRIFTLESS_KUBECONFIG"} <= set(dev_only)


# --- pages, links and paths ------------------------------------------------------------------

def test_readme_is_a_front_page_that_links_every_docs_page():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; keep it a front page under {README_LIMIT} " \
                                 f"and move detail to docs/"
    linked = {target.split("#")[0] for target in _LINK.findall(_prose(README))}
    assert {f"docs/{p.name}" for p in DOCS.glob("*.md")} <= linked


@pytest.mark.parametrize("page", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_and_headings_that_exist(page):
    broken = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):            # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_paths_and_names_in_the_docs_exist(page):
    """`shared/...py`, `devtools/...py`, `tests/...py` paths and `shared.x.y` names resolve (old module
    names such as shared/reconcile.py or shared.pipeline fail here)."""
    text = page.read_text(encoding="utf-8")
    missing = [path for path in re.findall(r"\b((?:shared|devtools|tests|bench|infra)/[\w/.-]*\w\.(?:py|bicep|json))",
                                           text) if not (ROOT / path).exists()]
    missing += [dotted for dotted in re.findall(r"\bshared(?:\.[A-Za-z_]\w*)+", text) if not _resolves(dotted)]
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {sorted(set(missing))}"


def _resolves(dotted: str) -> bool:
    """`shared.a.b.c` is a module, or an attribute of one."""
    parts = dotted.split(".")
    target = importlib.import_module(parts[0])
    for depth, name in enumerate(parts[1:], 2):
        if hasattr(target, name):
            target = getattr(target, name)
            continue
        try:
            target = importlib.import_module(".".join(parts[:depth]))
        except ImportError:
            return False
    return True


# --- the docs list what the code has ------------------------------------------------------------

@functools.cache
def _functions() -> tuple:
    """The functions of a fresh copy of function_app.py (a FunctionApp may be indexed only once)."""
    spec = importlib.util.spec_from_file_location("function_app_for_docs", ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.app.get_functions())


def _routes() -> list[tuple[str, str]]:
    routes = []
    for function in _functions():
        trigger = function.get_trigger()
        if trigger.get_binding_name() == "httpTrigger":
            for method in trigger.methods:
                routes.append((str(getattr(method, "value", method)).upper(), f"/api/{trigger.route}"))
    return routes


def test_http_api_documents_every_route():
    page = (DOCS / "http-api.md").read_text(encoding="utf-8")
    routes = _routes()
    assert len(routes) >= 7
    missing = [f"{method} {path}" for method, path in routes
               if not re.search(re.escape(f"{method} {path}") + r"(?![\w/{-])", page)]
    assert not missing, f"docs/http-api.md does not list: {missing}"


def test_operations_lists_every_function():
    page = (DOCS / "operations.md").read_text(encoding="utf-8")
    names = [f.get_function_name() for f in _functions()]
    assert len(names) >= 12
    assert not [n for n in names if f"`{n}`" not in page], "docs/operations.md misses a function"


def _yaml_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        for number, block in enumerate(re.findall(r"^```ya?ml\n(.*?)^```", page.read_text(encoding="utf-8"),
                                                  re.M | re.S), 1):
            blocks.append((f"{page.relative_to(ROOT)}#{number}", block))
    return blocks


ACA_KINDS = {(version, kind) for version in (API_VERSION, SYNOSCD_API_VERSION) for kind in ACA_READERS}
"""(apiVersion, kind) of the documents an aca Target's path holds; anything else is a Target or Kubernetes."""


@pytest.mark.parametrize("where, block", _yaml_blocks(), ids=[w for w, _ in _yaml_blocks()])
def test_manifests_shown_in_the_docs_are_valid(where, block):
    """Every complete manifest in a ```yaml block passes the validation the product runs: Targets as Target
    manifests, the kinds of an aca Target's path (App, Job, DaprComponent, Project) read together as one folder,
    anything else as Kubernetes objects. A Project is not an object of its own: it shapes the Apps it covers."""
    documents = [d for d in yaml.safe_load_all(block) if isinstance(d, dict) and "apiVersion" in d]
    if not documents:
        pytest.skip("a fragment, not a manifest")
    data = {f"{where}.yaml": block.encode()}
    kinds = {(d["apiVersion"], d.get("kind")) for d in documents}
    if kinds == {(API_VERSION, "Target")}:
        found, problems = load_targets(data, default_subscription=SUBSCRIPTION)
    elif kinds <= ACA_KINDS:
        found, problems = manifests.load_objects(data, ACA_READERS)
    else:
        found, problems = kube_manifests.load_objects(data, namespace="default")
    assert not problems, [str(p) for p in problems]
    assert len(found) == len([d for d in documents if d.get("kind") != PROJECT_KIND])


def test_the_complete_examples_in_manifests_md_are_the_bundled_ones():
    """The complete App, Job and DaprComponent shown in docs/manifests.md are examples/apps/ as `make run` applies
    them (compared as YAML, comments aside), and every kind an aca Target reads has its section."""
    page = (DOCS / "manifests.md").read_text(encoding="utf-8")
    shown = [d for where, block in _yaml_blocks() if where.startswith("docs/manifests.md#")
             for d in yaml.safe_load_all(block)]
    for name in ("orders", "nightly-report", "orders-pubsub"):
        example = yaml.safe_load((ROOT / "examples" / "apps" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert example in shown, f"docs/manifests.md does not show examples/apps/{name}.yaml as it is"
        assert f"(../examples/apps/{name}.yaml)" in page
    headings = {h.strip() for h in _HEADING.findall(_prose(DOCS / "manifests.md"))}
    assert set(ACA_READERS) | {"Target"} <= headings, "docs/manifests.md needs a section per manifest kind"


def test_numbers_that_are_not_finite_are_refused_with_the_setting_named():
    from shared.config.settings import Settings, SettingsError

    for value in ("nan", "inf"):
        with pytest.raises(SettingsError, match="DRIFTLESS_ARM_POLL_INTERVAL must be a number"):
            Settings.from_env({"DRIFTLESS_ARM_POLL_INTERVAL": value})
