"""Session 47: ``plexloc merge``, ``filter`` and ``debias`` imported torch (about 2.9 s a command) because the
``plexloc.post`` package imported every module, the registration's calibration code and torch among them. Its names
are imported from their modules on first use now (PEP 562, ``plexloc._lazy``, as ``plexloc.camera``'s)."""

from __future__ import annotations

import subprocess
import sys

import plexloc.post as post


def test_merge_filter_and_debias_do_not_import_torch():
    code = ("import sys; import plexloc.post.merge, plexloc.post.filter, plexloc.post.debias, plexloc.cli.merge; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_package_still_gives_every_name_and_module():
    assert set(post._MODULES) | {"debias", "DebiasReport"} == set(post.__all__)
    for name in post.__all__:
        value = getattr(post, name)
        assert getattr(value, "__name__", name) == name or name[0].isupper()
    import plexloc.post.debias  # noqa: F401  (the module's import leaves the package's debias the function)

    assert callable(post.debias) and post.debias.__name__ == "debias"
    assert post.drift.rcc_drift is post.rcc_drift and post.registration.register_channels is post.register_channels
    assert {"merge", "assign_colors", "channels"} <= set(dir(post))
    from plexloc.post import merge_localizations, registration  # a name and a module, as before

    assert callable(merge_localizations) and hasattr(registration, "register_channels")
    try:
        post.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "plexloc.post" in str(err) and "no_such_name" in str(err)
    else:
        raise AssertionError("an unknown name was given")
