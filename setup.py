# The package data of the wheel: schemas/ and hw_profiles/ stay at the repository's top level
# (where users look for them) and are installed as toolchain.schemas and toolchain.hw_profiles;
# the Ethos-N bridge's C++ source and the calibration's worst errors ship beside their modules;
# the firmware check's C files ride along inside toolchain.firmware.
# Everything else about the package is in pyproject.toml.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["toolchain", "toolchain.*"]) + ["toolchain.schemas", "toolchain.hw_profiles"],
    package_dir={"toolchain.schemas": "schemas", "toolchain.hw_profiles": "hw_profiles"},
    package_data={"toolchain.schemas": ["*.schema.json"], "toolchain.hw_profiles": ["*.toml"],
                  "toolchain.targets": ["ethos_n_bridge.cpp", "ethos_n_calibration.json"],
                  # the firmware check program's startup code, linker script and test main (toolchain firmware-check)
                  "toolchain.firmware": ["m55_check/*.c", "m55_check/*.h", "m55_check/*.ld"]},
)
