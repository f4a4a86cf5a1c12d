# SPDX-License-Identifier: LGPL-2.1-or-later
"""The user and group tables of a root directory (an install test's)."""

import os


def read_passwd_group(root):
    """(passwd, group) of root/etc, each a dict of name → its fields."""
    tables = []
    for name in ("passwd", "group"):
        with open(os.path.join(root, "etc", name), encoding="utf-8") as f:
            rows = [line.rstrip("\n").split(":") for line in f if line.strip()]
        tables.append({row[0]: row for row in rows})
    return tuple(tables)
