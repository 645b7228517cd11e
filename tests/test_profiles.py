"""Hardware profiles: every built-in one checked against Vela's own architecture model; contradictions refused."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import REPO

from toolchain.cli import main
from toolchain.core.errors import ConfigError, InputError
from toolchain.targets import vela_system as vs
from toolchain.targets.profile import Family
from toolchain.targets.profiles import (
    builtin_names,
    list_aliases,
    list_profiles,
    load_profile,
)


def vela_arch(profile, config_files: list[str]):
    """Vela's in-process architecture model for a profile: the oracle for clocks and bandwidths."""
    from ethosu.vela.architecture_features import ArchitectureFeatures

    return ArchitectureFeatures(
        vela_config_files=config_files,
        accelerator_config=profile.accelerator,
        system_config=profile.system_config_name,
        memory_mode=profile.memory_mode_name,
        max_blockdep=3,
        verbose_config=False,
        arena_cache_size=None,
    )


def assert_matches_vela(profile, arch) -> None:
    from ethosu.vela.tensor import MemArea

    assert profile.clock_hz == pytest.approx(arch.core_clock)
    for area, bw in profile.bandwidths_bytes_per_s().items():
        assert bw == pytest.approx(arch.memory_bandwidths_per_second[MemArea[area]]), area
    assert profile.system_config.axi0_port.value == arch.axi0_port.name
    assert profile.system_config.axi1_port.value == arch.axi1_port.name


def write_profile(tmp_path: Path, text: str, name: str = "board.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- built-ins


def test_every_vela_accelerator_has_a_profile():
    from ethosu.vela.architecture_features import Accelerator

    accelerators = {p.accelerator for p in list_profiles() if p.family.compiled_by_vela}
    assert accelerators == set(Accelerator.member_list())


# Arm's support library (driver stack 25.03): CapabilitiesInternal.cpp's engines, IGs and OGs per engine,
# default SRAM; MACs per cycle = engines x IGs x 8 MAC units x engines x OGs (MceEstimationUtils.cpp)
ARM_VARIANTS = {
    "ethos-n78-1tops-2ple": ("ETHOS_N78_1TOPS_2PLE_RATIO", 512, 448 * 1024),
    "ethos-n78-1tops-4ple": ("ETHOS_N78_1TOPS_4PLE_RATIO", 512, 448 * 1024),
    "ethos-n78-2tops-2ple": ("ETHOS_N78_2TOPS_2PLE_RATIO", 1024, 768 * 1024),
    "ethos-n78-2tops-4ple": ("ETHOS_N78_2TOPS_4PLE_RATIO", 1024, 768 * 1024),
    "ethos-n78-4tops-2ple": ("ETHOS_N78_4TOPS_2PLE_RATIO", 2048, 1024 * 1024),
    "ethos-n78-4tops-4ple": ("ETHOS_N78_4TOPS_4PLE_RATIO", 2048, 1024 * 1024),
    "ethos-n78-8tops-2ple": ("ETHOS_N78_8TOPS_2PLE_RATIO", 4096, 2048 * 1024),
}


def test_ethos_n78_profiles_are_arms_seven_variants():
    n78 = {p.name: p for p in list_profiles() if p.family is Family.ETHOS_N78}
    assert set(n78) == set(ARM_VARIANTS)
    for name, (variant, macs, sram) in ARM_VARIANTS.items():
        p = n78[name]
        assert p.ethos_n.variant.value == variant and p.accelerator == name
        assert p.ethos_n.variant.hardware.macs_per_cycle == macs and p.sram_budget_bytes == sram
        tops = int(name.split("-")[2].removesuffix("tops"))  # the name's TOPS hold at the profiles' 1 GHz
        assert abs(2 * macs * p.clock_hz / 1e12 - tops) <= 0.05 * tops
        assert p.system_config is None and p.palette_limit == 32


@pytest.mark.parametrize("sram, ok", [(448 * 1024, True), (256 * 1024, True), (2048 * 1024, True),
                                      (16 * 8 * 1024, False), (100 * 8 * 1024, False), (4096 * 1024, False)])
def test_ethos_n_sram_sizes_follow_arms_rule(tmp_path, sram, ok):
    # 8 SRAM controllers on the 1 TOPS variants: 32 to 128 KiB each in steps of 16 KiB, or 56 or 256 KiB
    text = f'schema_version = 1\nname = "x"\nbase = "ethos-n78-1tops-4ple"\n[budget]\nsram_bytes = {sram}\n'
    if ok:
        assert load_profile(write_profile(tmp_path, text)).sram_budget_bytes == sram
    else:
        with pytest.raises(ConfigError, match="8 SRAM controllers"):
            load_profile(write_profile(tmp_path, text))


@pytest.mark.parametrize("name", [n for n in builtin_names()])
def test_builtin_profile_loads_and_agrees_with_vela(name):
    p = load_profile(name)
    assert p.palette_limit == 32
    assert p.sram_budget_bytes > 0 and p.flash_budget_bytes > 0
    assert p.family is Family.of_accelerator(p.accelerator)
    if p.family.compiled_by_vela:
        assert p.system_config.bundled and p.memory_mode.bundled
        assert p.system_config_name.startswith(p.family.system_config_prefix)
        arch = vela_arch(p, [str(vs.bundled_ini_path())])
        assert_matches_vela(p, arch)


def test_aliases():
    assert list_aliases() == {"ethos-u55": "ethos-u55-128", "ethos-u65": "ethos-u65-256", "ethos-u85": "ethos-u85-256",
                              "ethos-n78": "ethos-n78-1tops-4ple"}
    for alias, target in list_aliases().items():
        p = load_profile(alias)
        assert p.name == target and alias in p.aliases
        assert p == load_profile(target)


def test_profile_file_names_match_their_names():
    for path in (REPO / "hw_profiles").glob("*.toml"):
        assert load_profile(path).name in (path.stem, list_aliases().get(path.stem))


# --------------------------------------------------------------------------- user profiles

CUSTOM = """
schema_version = 1
name = "my-board"
description = "a U55 behind a slow QSPI flash"
accelerator = "ethos-u55-64"
memory_mode = "Shared_Sram"
palette_limit = 32
[system]
core_clock_hz = 160_000_000
axi0_port = "Sram"
axi1_port = "OffChipFlash"
[system.Sram]
bandwidth_bytes_per_s = 1.28e9
burst_length_bytes = 32
read_latency_cycles = 16
write_latency_cycles = 16
max_reads = 4
max_writes = 4
[system.OffChipFlash]
clock_scale = 0.0625
burst_length_bytes = 64
read_latency_cycles = 48
[budget]
sram_bytes = 393_216
flash_bytes = 2_097_152
"""


def test_custom_system_renders_an_ini_vela_reads_back(tmp_path):
    p = load_profile(write_profile(tmp_path, CUSTOM))
    assert p.needs_rendered_ini and p.clock_hz == 160_000_000
    # bandwidth in bytes/s became Vela's clock scale: 1.28e9 / (8 B x 160 MHz) = 1.0
    assert p.system_config.timing(vs.MemoryArea.SRAM).clock_scale == pytest.approx(1.0)
    ini = tmp_path / p.ini_file_name
    ini.write_text(p.vela_ini_text())
    system, mode = vs.parse_ini(ini.read_text(), p.system_config_name, p.memory_mode_name)
    assert system == p.system_config
    assert replace(mode, bundled=True) == p.memory_mode  # the named Shared_Sram, copied into the .ini
    arch = vela_arch(p, [str(ini)])
    assert_matches_vela(p, arch)
    assert arch.memory_latency[arch.axi1_port][0] == 48
    assert p.bandwidths_bytes_per_s()["OffChipFlash"] == pytest.approx(8 * 0.0625 * 160e6)


def test_custom_memory_mode_renders(tmp_path):
    text = CUSTOM.replace('memory_mode = "Shared_Sram"', "").replace("[budget]", "[memory_mode]\nname = \"Weights_In_Flash\"\nconst_mem_area = \"Axi1\"\narena_mem_area = \"Axi0\"\ncache_mem_area = \"Axi0\"\n[budget]")
    p = load_profile(write_profile(tmp_path, text))
    assert p.memory_mode_name == "Weights_In_Flash" and not p.memory_mode.bundled
    ini = tmp_path / "x.ini"
    ini.write_text(p.vela_ini_text())
    assert_matches_vela(p, vela_arch(p, [str(ini)]))


def test_base_profile_overrides_only_what_is_given(tmp_path):
    p = load_profile(write_profile(tmp_path, 'schema_version = 1\nname = "small"\nbase = "ethos-u55"\n[budget]\nsram_bytes = 65536\n'))
    base = load_profile("ethos-u55-128")
    assert p.name == "small" and p.base == "ethos-u55"
    assert p.sram_budget_bytes == 65536 and p.flash_budget_bytes == base.flash_budget_bytes
    assert p.system_config == base.system_config and p.accelerator == base.accelerator
    assert not p.needs_rendered_ini


def test_base_with_custom_system_drops_the_named_one(tmp_path):
    body = CUSTOM.split("[system]", 1)[1].split("[budget]", 1)[0]
    p = load_profile(write_profile(tmp_path, f'schema_version = 1\nname = "b"\nbase = "ethos-u55-64"\n[system]{body}'))
    assert p.system_config_name == "b_System" and p.needs_rendered_ini


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('accelerator = "ethos-u55-64"', 'accelerator = "ethos-u55-64"\nsystem_config = "Ethos_U85_SYS_DRAM_Mid"'),
         "exactly one of system_config"),
        (lambda t: t.replace("palette_limit = 32", "palette_limit = 64"), "palette_limit"),
        (lambda t: t.replace("clock_scale = 0.0625", "clock_scale = 0.0625\nspeed = 3"), "speed"),
        (lambda t: t.replace("bandwidth_bytes_per_s = 1.28e9", "bandwidth_bytes_per_s = 9e9"), "clock_scale must be <= 1"),
        (lambda t: t.replace("bandwidth_bytes_per_s = 1.28e9", "bandwidth_bytes_per_s = 1.28e9\nclock_scale = 1.0"),
         "exactly one of clock_scale or bandwidth"),
        (lambda t: t.split("[system.OffChipFlash]")[0] + "[budget]" + t.split("[budget]")[1], "no [system.OffChipFlash] table"),
        (lambda t: t.replace("[budget]", "[system.Dram]\nclock_scale = 0.5\n[budget]"), "system.Dram is given"),
        (lambda t: t.replace('memory_mode = "Shared_Sram"', 'memory_mode = "Dedicated_Sram"'), "Ethos-U65/U85"),
        (lambda t: t.replace('memory_mode = "Shared_Sram"', 'memory_mode = "Fast_Mode"'), "unknown Vela memory mode"),
        (lambda t: t.replace('name = "my-board"', 'name = "My Board"'), "name"),
        (lambda t: t.replace('accelerator = "ethos-u55-64"', 'accelerator = "ethos-u99-64"'), "accelerator"),
        (lambda t: t.replace("sram_bytes = 393_216", "sram_bytes = 0"), "sram_bytes"),
    ],
)
def test_contradictory_or_malformed_user_profiles_refused(tmp_path, edit, message):
    text = edit(CUSTOM)
    assert text != CUSTOM
    with pytest.raises(ConfigError) as err:
        load_profile(write_profile(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ('base = "ethos-u55-128"\nsystem_config = "Ethos_U85_SYS_Flash_High"', "is not for ethos-u55"),
        ('base = "ethos-u65-256"\nsystem_config = "Ethos_U55_High_End_Embedded"', "is not for ethos-u65"),
        ('base = "ethos-u55-128"\nmemory_mode = "Dedicated_Sram_384KB"', "Ethos-U65/U85"),
        ('base = "ethos-u65-256"\n[budget]\nsram_bytes = 131072', "384"),  # 384 KiB NPU cache on a 128 KiB SRAM
        ('base = "ethos-u55-128"\n[memory_mode]\nconst_mem_area = "Axi0"\narena_mem_area = "Axi1"\ncache_mem_area = "Axi0"',
         "constants"),
        ('base = "ethos-u55-128"\n[memory_mode]\nconst_mem_area = "Axi1"\narena_mem_area = "Axi1"\ncache_mem_area = "Axi0"',
         "arena must be Sram or Dram"),
        ('base = "ethos-u55-128"\nsystem_config = "Ethos_U55_Turbo"', "unknown Vela system config"),
        ('base = "ethos-u55-999"', "unknown target"),
        ('base = "ethos-n78-4tops-2ple"\n[budget]\nsram_bytes = 1000000', "16 SRAM controllers"),
        ('base = "ethos-n78-4tops-2ple"\n[ethos_n]\ntops = 5', "tops"),
        ('base = "ethos-n78-4tops-2ple"\nsystem_config = "Ethos_U55_High_End_Embedded"', "not compiled by Vela"),
        ('base = "ethos-u55-128"\n[ethos_n]\nclock_hz = 1000000000', "does not belong"),
    ],
)
def test_contradictions_with_builtin_bases_refused(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_profile(write_profile(tmp_path, f'schema_version = 1\nname = "x"\n{text}\n'))
    assert message in str(err.value)


def test_alias_of_an_alias_refused(tmp_path):
    with pytest.raises(ConfigError, match="itself an alias"):
        load_profile(write_profile(tmp_path, 'schema_version = 1\nname = "a"\nalias_of = "ethos-u55"\n'))


def test_unknown_target_and_missing_file():
    with pytest.raises(ConfigError, match="unknown target 'ethos-u56'.*ethos-u55-128"):
        load_profile("ethos-u56")
    with pytest.raises(InputError, match="not found"):
        load_profile("no/such/profile.toml")


def test_bad_toml_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(write_profile(tmp_path, "name = [\n"))


# --------------------------------------------------------------------------- CLI


def test_cli_lists_every_profile(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for p in list_profiles():
        assert p.name in out
    assert "ethos-u55" in out and "ETHOS_N78_8TOPS_2PLE_RATIO: 4096 MACs/cycle" in out


def test_cli_json_and_ini(tmp_path, capsys):
    path = write_profile(tmp_path, CUSTOM)
    assert main(["profiles", "ethos-u85", str(path), "--json", "--ini"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["ethos-u85-256", "my-board"]
    assert "vela_ini" not in data[0] and "[System_Config.my_board_System]" in data[1]["vela_ini"]
    assert data[1]["system_config"]["memories"]["Sram"]["bandwidth_bytes_per_s"] == 1_280_000_000


def test_cli_details_and_bad_profile_exit_2(tmp_path, capsys):
    assert main(["profiles", "ethos-n78-8tops-2ple"]) == 0
    out = capsys.readouterr().out
    assert "ETHOS_N78_8TOPS_2PLE_RATIO: 8 engines, 4096 MACs/cycle (8.19 TOPS at 1 GHz)" in out
    assert "calibrated analytical estimate (max error on the grid:" in out
    assert main(["profiles", "ethos-n78-2tops-2ple"]) == 0
    assert "uncalibrated: Arm's support library 6.0.0 estimates nothing for" in capsys.readouterr().out
    bad = write_profile(tmp_path, CUSTOM.replace('memory_mode = "Shared_Sram"', 'memory_mode = "Dedicated_Sram"'))
    assert main(["profiles", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: hardware profile board.toml") and "Traceback" not in err


# --------------------------------------------------------------------------- a user's file named like a built-in


SHADOW = 'schema_version = 1\nname = "{name}"\nbase = "ethos-u55-128"\n[budget]\nsram_bytes = 1024\n'


@pytest.mark.parametrize("name", ["ethos-u55-128", "ethos-u55"])  # a profile's name, an alias
def test_a_profile_file_shadowing_a_built_in_is_refused_unless_replace_builtin(tmp_path, name):
    path = write_profile(tmp_path, SHADOW.format(name=name))
    with pytest.raises(ConfigError, match=f"named '{name}', like a built-in target.*--replace-builtin"):
        load_profile(path)
    p = load_profile(path, replace_builtin=True)
    assert p.name == name and p.sram_budget_bytes == 1024
    assert load_profile("ethos-u55-128").sram_budget_bytes != 1024  # the built-in itself is unchanged


def test_a_copy_of_a_built_in_file_is_not_shadowing(tmp_path):
    copy = tmp_path / "ethos-u65-256.toml"
    copy.write_bytes((REPO / "hw_profiles" / "ethos-u65-256.toml").read_bytes())
    assert load_profile(copy) == replace(load_profile("ethos-u65-256"), source=copy.name)


@pytest.mark.parametrize("argv", [
    ["compile", "m.tflite", "--profile", "{p}", "-o", "{o}"],
    ["recluster", "m.tflite", "-o", "{o}/x.tflite", "--profile", "{p}", "--flash-budget", "1000"],
    ["profiles", "{p}"],
])
def test_every_verb_taking_a_profile_refuses_the_shadow_in_one_line(tmp_path, capsys, argv):
    p = write_profile(tmp_path, SHADOW.format(name="ethos-u55-128"))
    (tmp_path / "m.tflite").write_bytes(b"")  # refused before the model is read
    args = [a.format(p=p, o=tmp_path / "out") for a in argv]
    args = [str(tmp_path / a) if a == "m.tflite" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--replace-builtin" in err and "\n" not in err
