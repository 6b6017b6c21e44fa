"""Researcher accounts: the `Researchers` group and what it may do in the admin.

A researcher is a staff account (`backend.studies.permissions.is_researcher`) that is not a
superuser. The studies', sessions', imported datasets', spectra and confound reports' pages check
that alone; the catalogue's pages (networks, image sets, unit sets, units, images, jobs, the
atlas's rows) also go by Django's model permissions, which the `Researchers` group holds: view
on every such page, and add, change and delete on what researchers make themselves — networks,
image sets, unit sets, observers — narrowed by the catalogue rule (`backend.stimuli.access`: one
changes and deletes only one's own items). The group is made, and its permissions set to exactly
these, after every `migrate` (`CoreConfig.ready`); `manage.py add_researcher` makes an account
in it.
"""

from __future__ import annotations

from typing import Any

GROUP = "Researchers"
VIEW = {
    "stimuli": ["network", "layer", "imageset", "unitset", "unit", "image", "visualization", "job"],
    "atlas": ["measure", "ablationcurve", "population", "observer", "description", "lwtanetwork",
              "retrainednetwork", "spectrum", "confoundreport"],
}  # fmt: skip
MAKE = {"stimuli": ["network", "imageset", "unitset"], "atlas": ["observer"]}


def codenames() -> set[tuple[str, str]]:
    """(app label, codename) of every permission of the group."""
    names = {(app, f"view_{model}") for app, models in VIEW.items() for model in models}
    for app, models in MAKE.items():
        for model in models:
            names |= {(app, f"{action}_{model}") for action in ("add", "change", "delete")}
    return names


def ensure_researchers_group(**signal: Any) -> None:
    """Make the group (once) and set its permissions to exactly `codenames()`: idempotent."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    for label in VIEW:  # their permissions exist even on this migrate's first run
        create_permissions(apps.get_app_config(label), verbosity=0)
    wanted = codenames()
    candidates = Permission.objects.filter(content_type__app_label__in=list(VIEW))
    chosen = [p for p in candidates.select_related("content_type")
              if (p.content_type.app_label, p.codename) in wanted]  # fmt: skip
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.set(chosen)
