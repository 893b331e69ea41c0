"""Package discovery for the wheel: every package under advisor/, plugins/ and ui/ is found, never listed.

The folders ``plugins/`` and ``ui/`` install under the import names ``advisor_plugins`` and
``advisor_ui`` (nothing is installed as a top-level ``plugins`` or ``ui``). All other metadata
lives in pyproject.toml.
"""

from setuptools import find_packages, setup

# folder -> import name
ROOTS = {"advisor": "advisor", "plugins": "advisor_plugins", "ui": "advisor_ui"}


def discover() -> tuple[list[str], dict[str, str]]:
    """Every package below each root, renamed to its import name, and where each lives."""
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, name in ROOTS.items():
        found = [folder] + [p for p in find_packages(include=[f"{folder}.*"])]
        for pkg in found:
            import_name = name + pkg[len(folder):]
            packages.append(import_name)
            package_dir[import_name] = pkg.replace(".", "/")
    return packages, package_dir


packages, package_dir = discover()
setup(packages=packages, package_dir=package_dir)
