"""The CLI framework: help everywhere, clear errors, negative coordinates."""

import pytest

from geoseek.cli import _attach_negative_lists, build_parser, main


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in ("collection", "build", "search", "train", "eval", "bench", "serve"):
        assert verb in out


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for verb, vparser in verbs.choices.items():
        subs = [a for a in vparser._actions if a.__class__.__name__ == "_SubParsersAction"]
        names = [[verb]] if not subs else [[verb, name] for name in subs[0].choices]
        for argv in names:
            with pytest.raises(SystemExit) as exc:
                main([*argv, "--help"])
            assert exc.value.code == 0, argv
            assert "usage:" in capsys.readouterr().out


def test_verb_without_subcommand_is_an_error(capsys):
    assert main(["train"]) == 2
    assert "usage" in capsys.readouterr().err


def test_negative_coordinates_are_attached():
    assert _attach_negative_lists(["search", "c", "--near", "-54.8,-25.1", "-k", "3"]) == [
        "search", "c", "--near=-54.8,-25.1", "-k", "3"]
    assert _attach_negative_lists(["--bbox", "-1,-2,3,4"]) == ["--bbox=-1,-2,3,4"]
    assert _attach_negative_lists(["-k", "-3"]) == ["-k", "-3"]
