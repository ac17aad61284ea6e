"""CPU model detection, virtualisation detection, and the TDP and per-vCPU power tables."""

from __future__ import annotations

import csv
import os
from importlib import resources
from pathlib import Path

import pytest

from co2cb.meters.cpu import (
    CpuSignature,
    TdpMatch,
    VcpuPower,
    architecture_from_signature,
    count_sockets,
    detect_virtualization,
    lookup_tdp,
    normalise_model_name,
    read_cpu_model,
    read_cpu_signature,
    tdp,
    vcpu_power,
)

CCF_ARCHITECTURES = {
    "Broadwell",
    "Cascade Lake",
    "Coffee Lake",
    "EPYC 1st Gen",
    "EPYC 2nd Gen",
    "EPYC 3rd Gen",
    "EPYC 4th Gen",
    "EPYC 5th Gen",
    "Emerald Rapids",
    "Granite Rapids",
    "Graviton2",
    "Graviton3",
    "Graviton3E",
    "Graviton4",
    "Haswell",
    "Ice Lake",
    "Ivy Bridge",
    "Sandy Bridge",
    "Sapphire Rapids",
    "Skylake",
}


def _table(name: str) -> list[dict[str, str]]:
    text = (resources.files("co2cb") / "data" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


# ---------------------------------------------------------------------------
# The shipped tables
# ---------------------------------------------------------------------------


def test_tdp_table_rows_are_valid() -> None:
    rows = _table("cpu_tdp.csv")
    assert len(rows) > 3000
    assert list(rows[0]) == ["model", "tdp_w", "source", "year"]
    keys = set()
    for row in rows:
        assert row["model"].strip() == row["model"] and row["model"]
        assert 1 <= float(row["tdp_w"]) <= 1000, row
        assert row["source"].strip(), row
        assert 1970 <= int(row["year"]) <= 2026, row
        keys.add(row["model"].casefold())
    assert len(keys) == len(rows), "one row per normalised model name"


def test_tdp_table_names_are_normalised() -> None:
    for row in _table("cpu_tdp.csv"):
        assert normalise_model_name(row["model"]) == row["model"]


def test_tdp_table_sources_are_the_named_datasets() -> None:
    sources = {row["source"] for row in _table("cpu_tdp.csv")}
    assert {"Intel ARK via CodeCarbon", "AMD via CodeCarbon", "Eco2AI cpu_names"} <= sources
    assert "CodeCarbon cpu_power (snapshot year)" in sources
    assert all(
        s.split(" (")[0]
        in {"Intel ARK via CodeCarbon", "AMD via CodeCarbon", "CodeCarbon cpu_power", "Eco2AI cpu_names"}
        for s in sources
    )


def test_vcpu_table_rows_are_valid() -> None:
    rows = _table("vcpu_power.csv")
    assert list(rows[0]) == ["provider", "architecture", "min_w", "max_w", "source", "year"]
    assert {r["provider"] for r in rows} == {"aws", "gcp", "azure"}
    for row in rows:
        assert 0 < float(row["min_w"]) < float(row["max_w"]) < 50, row
        assert row["source"].strip(), row
        assert 2015 <= int(row["year"]) <= 2026, row
        assert row["architecture"] in CCF_ARCHITECTURES, row
    aws = {r["architecture"] for r in rows if r["provider"] == "aws"}
    assert aws == CCF_ARCHITECTURES


# ---------------------------------------------------------------------------
# Names and TDP lookup
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "Intel Xeon Platinum 8375C"),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763"),
        ("Intel(R) Core(TM) i7-10700K CPU @ 3.80GHz", "Intel Core i7-10700K"),
        ("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", "Intel Core i7-1165G7"),
        ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", "Intel Xeon E5-2670"),
        ("Intel® Xeon® Gold 6248R Processor", "Intel Xeon Gold 6248R"),
        ("AMD EPYC™ 9654", "AMD EPYC 9654"),
        ("AMD Ryzen Threadripper PRO 5975WX 32-Cores", "AMD Ryzen Threadripper PRO 5975WX"),
        ("AMD A10-7850K Radeon R7, 12 Compute Cores 4C+8G", "AMD A10-7850K"),
        ("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics", "AMD Ryzen 7 7840HS"),
        ("Dual-Core AMD Opteron(tm) Processor 1220 SE", "AMD Opteron 1220 SE"),
        ("EPYC 4364P", "AMD EPYC 4364P"),
        ("Threadripper PRO 7945WX", "AMD Ryzen Threadripper PRO 7945WX"),
        ("  intel   XEON  e5-2686v4 ", "intel XEON e5-2686 v4"),
    ],
)
def test_normalise_model_name(raw: str, clean: str) -> None:
    assert normalise_model_name(raw) == clean
    assert normalise_model_name(clean) == clean


@pytest.mark.parametrize(
    ("name", "tdp_w"),
    [
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", 300),
        ("Intel Xeon Platinum 8375C", 300),
        ("intel(r) xeon(r) platinum 8375c cpu @ 2.90ghz", 300),
        ("AMD EPYC 7763 64-Core Processor", 280),
        ("AMD EPYC™ 7763", 280),
        ("Intel(R) Core(TM) i7-10700K CPU @ 3.80GHz", 125),
        ("Intel® Core™ i7-10700K Processor", 125),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", 145),
        ("Intel(R) Xeon(R) CPU E5-2686 v3 @ 2.00GHz", 120),
        ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", 210),
        ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", 150),
        ("AMD EPYC 9654 96-Core Processor", 360),
        ("AMD Ryzen 9 5950X 16-Core Processor", 105),
        ("AMD Opteron(tm) Processor 6274", 115),
    ],
)
def test_lookup_tdp_real_names(name: str, tdp_w: float) -> None:
    match = lookup_tdp(name)
    assert isinstance(match, TdpMatch)
    assert match.tdp_w == tdp_w
    assert match.exact
    assert match.source
    assert match.year is None or 1970 <= match.year <= 2026


def test_lookup_tdp_prefers_vendor_data() -> None:
    # ARK says 54.5 W; CodeCarbon's aggregated list rounds it to 54.
    match = lookup_tdp("Intel(R) Atom(TM) P5731")
    assert match is not None and match.tdp_w == 54.5 and match.source == "Intel ARK via CodeCarbon"
    # AMD's page gives 35-54 W: the largest figure is kept.
    match = lookup_tdp("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics")
    assert match is not None and match.tdp_w == 54 and match.source.startswith("AMD via CodeCarbon")


def test_lookup_tdp_fuzzy() -> None:
    match = lookup_tdp("Intel(R) Xeon(R) 8375C")
    assert match is not None and not match.exact
    assert match.model == "Intel Xeon Platinum 8375C" and match.tdp_w == 300
    match = lookup_tdp("AMD Threadripper 3990X")
    assert match is not None and not match.exact and match.tdp_w == 280


@pytest.mark.parametrize(
    "name",
    [
        "Foo Bar 9000",
        "",
        "   ",
        "AMD EPYC",  # no model number (this is what some VMs show)
        "Intel(R) Xeon(R) CPU @ 2.20GHz",  # GCP hides the model
        "Intel Xeon Processor (Cascadelake)",  # QEMU model
        "Common KVM processor",
        "Intel(R) Xeon(R) Platinum 9999Z",
        "AMD Ryzen 6274",  # a number of an Opteron, in another family
        "Intel(R) Core(TM) 8375C",  # a number of a Xeon, in another family
        "Intel(R) Xeon(R) CPU E5-2686 v9",  # the version matters
    ],
)
def test_lookup_tdp_unknown_returns_none(name: str) -> None:
    assert lookup_tdp(name) is None


def test_every_table_row_finds_itself() -> None:
    for row in _table("cpu_tdp.csv"):
        match = lookup_tdp(row["model"])
        assert match is not None and match.exact and match.model == row["model"]


def test_table_is_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    lookup_tdp("AMD EPYC 7763")

    def fail(name: str) -> list[dict[str, str]]:
        raise AssertionError("table read again")

    monkeypatch.setattr(tdp, "read_package_csv", fail)
    assert lookup_tdp("AMD EPYC 7763") is not None


# ---------------------------------------------------------------------------
# /proc/cpuinfo
# ---------------------------------------------------------------------------

X86_CPUINFO = """processor\t: {n}
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
stepping\t: 6
physical id\t: {socket}
flags\t\t: fpu vme de pse tsc msr pae {extra}avx2

"""

AARCH64_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 243.75
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _x86(tmp_path: Path, sockets: int = 1, per_socket: int = 2, hypervisor: bool = False) -> Path:
    extra = "hypervisor " if hypervisor else ""
    blocks = [
        X86_CPUINFO.format(n=s * per_socket + c, socket=s, extra=extra)
        for s in range(sockets)
        for c in range(per_socket)
    ]
    return _write(tmp_path / "cpuinfo", "".join(blocks))


def test_read_cpu_model_x86(tmp_path: Path) -> None:
    assert read_cpu_model(_x86(tmp_path)) == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"


def test_read_cpu_model_aarch64_without_model_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "cpuinfo", AARCH64_CPUINFO)
    assert read_cpu_model(path) == "ARM Neoverse-N1"
    unknown_part = _write(tmp_path / "cpuinfo2", AARCH64_CPUINFO.replace("0xd0c", "0xfff"))
    assert read_cpu_model(unknown_part) == "ARM CPU part 0xfff"


def test_read_cpu_model_old_arm_processor_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "cpuinfo", "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\n")
    assert read_cpu_model(path) == "ARMv7 Processor rev 4 (v7l)"


def test_read_cpu_model_unreadable(tmp_path: Path) -> None:
    assert read_cpu_model(tmp_path / "missing") is None
    assert read_cpu_model(tmp_path) is None  # a folder
    assert read_cpu_model(_write(tmp_path / "empty", "")) is None


def test_count_sockets(tmp_path: Path) -> None:
    assert count_sockets(_x86(tmp_path, sockets=2, per_socket=4)) == 2
    assert count_sockets(_x86(tmp_path, sockets=1, per_socket=8)) == 1
    assert count_sockets(_write(tmp_path / "arm", AARCH64_CPUINFO)) == 1
    assert count_sockets(tmp_path / "missing") == 1


def test_read_cpu_signature(tmp_path: Path) -> None:
    assert read_cpu_signature(_x86(tmp_path)) == CpuSignature("GenuineIntel", 6, 106, 6)
    assert read_cpu_signature(_write(tmp_path / "arm", AARCH64_CPUINFO)) is None
    assert read_cpu_signature(tmp_path / "missing") is None


# ---------------------------------------------------------------------------
# Virtualisation
# ---------------------------------------------------------------------------


def _dmi(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "dmi"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"sys_vendor": "Amazon EC2", "product_name": "m5.large"}, "Amazon EC2"),
        ({"sys_vendor": "Xen", "product_name": "HVM domU", "bios_version": "4.11.amazon"}, "Amazon EC2"),
        ({"sys_vendor": "Google", "product_name": "Google Compute Engine"}, "Google Compute Engine"),
        (
            {
                "sys_vendor": "Microsoft Corporation",
                "product_name": "Virtual Machine",
                "chassis_asset_tag": "7783-7084-3265-9085",
            },
            "Microsoft Azure",
        ),
        ({"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine"}, "Microsoft Hyper-V"),
        ({"sys_vendor": "QEMU", "product_name": "Standard PC (i440FX + PIIX, 1996)"}, "QEMU"),
        ({"sys_vendor": "Red Hat", "product_name": "KVM"}, "KVM"),
        ({"sys_vendor": "VMware, Inc.", "product_name": "VMware Virtual Platform"}, "VMware"),
        ({"sys_vendor": "innotek GmbH", "product_name": "VirtualBox"}, "VirtualBox"),
        ({"sys_vendor": "OpenStack Foundation", "product_name": "OpenStack Nova"}, "OpenStack"),
        ({"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R750"}, None),
    ],
)
def test_detect_virtualization_from_dmi(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    cpuinfo = _x86(tmp_path, hypervisor=False)
    assert detect_virtualization(cpuinfo, _dmi(tmp_path, **files)) == expected


def test_detect_virtualization_from_hypervisor_flag(tmp_path: Path) -> None:
    no_dmi = tmp_path / "no-dmi"
    assert detect_virtualization(_x86(tmp_path, hypervisor=True), no_dmi) == "unknown hypervisor"
    assert detect_virtualization(_x86(tmp_path, hypervisor=False), no_dmi) is None


def test_detect_virtualization_dmi_wins_over_flag(tmp_path: Path) -> None:
    dmi = _dmi(tmp_path, sys_vendor="Amazon EC2")
    assert detect_virtualization(_x86(tmp_path, hypervisor=True), dmi) == "Amazon EC2"


def test_detect_virtualization_unreadable_is_none(tmp_path: Path) -> None:
    dmi = _dmi(tmp_path)
    (dmi / "sys_vendor").mkdir()  # unreadable as a file
    assert detect_virtualization(tmp_path / "missing", dmi) is None
    assert detect_virtualization(tmp_path / "missing", tmp_path / "missing-dmi") is None


# ---------------------------------------------------------------------------
# Per-vCPU power
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "architecture"),
    [
        ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", "Sandy Bridge"),
        ("Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", "Ivy Bridge"),
        ("Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz", "Haswell"),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Broadwell"),
        ("Intel(R) Xeon(R) CPU E3-1230 v5 @ 3.40GHz", "Skylake"),
        ("Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz", "Skylake"),
        ("Intel(R) Xeon(R) Silver 4114 CPU @ 2.20GHz", "Skylake"),
        ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "Cascade Lake"),
        ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Cascade Lake"),
        ("Intel(R) Xeon(R) Platinum 8380HL CPU @ 2.90GHz", "Cascade Lake"),  # Cooper Lake
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "Ice Lake"),
        ("Intel(R) Xeon(R) Platinum 8488C", "Sapphire Rapids"),
        ("Intel(R) Xeon(R) Platinum 8480+", "Sapphire Rapids"),
        ("Intel(R) Xeon(R) Platinum 8592+", "Emerald Rapids"),
        ("Intel(R) Xeon(R) 6975P-C", "Granite Rapids"),
        ("Intel(R) Xeon(R) E-2288G CPU @ 3.70GHz", "Coffee Lake"),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Coffee Lake"),
        ("Intel Xeon Processor (Cascadelake)", "Cascade Lake"),
        ("Intel Core Processor (Broadwell, IBRS)", "Broadwell"),
        ("AMD EPYC 7571", "EPYC 1st Gen"),
        ("AMD EPYC 7B12", "EPYC 2nd Gen"),
        ("AMD EPYC 7R32", "EPYC 2nd Gen"),
        ("AMD EPYC 7763 64-Core Processor", "EPYC 3rd Gen"),
        ("AMD EPYC 7R13 Processor", "EPYC 3rd Gen"),
        ("AMD EPYC 7773X 64-Core Processor", "EPYC 3rd Gen"),
        ("AMD EPYC 9R14 96-Core Processor", "EPYC 4th Gen"),
        ("AMD EPYC 9754 128-Core Processor", "EPYC 4th Gen"),
        ("AMD EPYC 9965 192-Core Processor", "EPYC 5th Gen"),
        ("AMD EPYC-Rome Processor", "EPYC 2nd Gen"),
        ("AWS Graviton3", "Graviton3"),
        ("ARM Neoverse-N1", "Graviton2"),
        ("ARM Neoverse-V2", "Graviton4"),
    ],
)
def test_vcpu_power_architecture(name: str, architecture: str) -> None:
    power = vcpu_power(name, "aws")
    assert isinstance(power, VcpuPower)
    assert power.architecture == architecture
    assert 0 < power.min_w < power.max_w
    assert "aws" in power.source and power.year == 2026


@pytest.mark.parametrize(
    "name",
    [
        None,
        "AMD EPYC",
        "Intel(R) Xeon(R) CPU @ 2.20GHz",
        "Intel(R) Xeon(R) CPU E7-4870 @ 2.40GHz",  # Westmere-EX
        "Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz",  # Kaby Lake R
        "Intel(R) Xeon(R) 6780E",  # Sierra Forest
        "AMD EPYC 9V33X",
        "Common KVM processor",
    ],
)
def test_vcpu_power_unknown_is_average(name: str | None) -> None:
    power = vcpu_power(name)
    rows = [r for r in _table("vcpu_power.csv") if r["provider"] == "aws"]
    assert power.architecture == "unknown (average of all)"
    assert power.min_w == pytest.approx(sum(float(r["min_w"]) for r in rows) / len(rows))
    assert power.max_w == pytest.approx(sum(float(r["max_w"]) for r in rows) / len(rows))
    assert "mean of 20 architectures" in power.source


def test_vcpu_power_prefers_provider_table() -> None:
    name = "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"
    aws, gcp, azure = vcpu_power(name, "aws"), vcpu_power(name, "gcp"), vcpu_power(name, "Microsoft Azure")
    assert aws.architecture == gcp.architecture == azure.architecture == "Cascade Lake"
    assert "gcp" in gcp.source and "azure" in azure.source
    assert len({aws.max_w, gcp.max_w, azure.max_w}) == 3
    assert vcpu_power(name, "Google Compute Engine") == gcp
    assert vcpu_power(name, "Amazon EC2") == aws


def test_vcpu_power_falls_back_to_aws_table() -> None:
    # GCP's table has no Haswell and no Graviton: AWS's rows are used.
    haswell = vcpu_power("Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz", "gcp")
    assert haswell.architecture == "Haswell" and "aws" in haswell.source
    assert vcpu_power("ARM Neoverse-N1", "QEMU") == vcpu_power("ARM Neoverse-N1", "aws")
    unknown = vcpu_power("AMD EPYC", "gcp")
    assert unknown.architecture == "unknown (average of all)" and "gcp" in unknown.source


@pytest.mark.parametrize(
    ("signature", "architecture"),
    [
        (CpuSignature("AuthenticAMD", 25, 1, 1), "EPYC 3rd Gen"),
        (CpuSignature("AuthenticAMD", 23, 49, 0), "EPYC 2nd Gen"),
        (CpuSignature("AuthenticAMD", 25, 17, 1), "EPYC 4th Gen"),
        (CpuSignature("AuthenticAMD", 26, 2, 1), "EPYC 5th Gen"),
        (CpuSignature("GenuineIntel", 6, 85, 4), "Skylake"),
        (CpuSignature("GenuineIntel", 6, 85, 7), "Cascade Lake"),
        (CpuSignature("GenuineIntel", 6, 106, 6), "Ice Lake"),
        (CpuSignature("GenuineIntel", 6, 143, 8), "Sapphire Rapids"),
        (CpuSignature("GenuineIntel", 6, 79, 1), "Broadwell"),
        (CpuSignature("GenuineIntel", 6, 142, 10), None),  # client Kaby/Whiskey Lake
        (CpuSignature("AuthenticAMD", 25, 33, 0), None),  # Ryzen 5000 desktop
        (None, None),
    ],
)
def test_architecture_from_signature(signature: CpuSignature | None, architecture: str | None) -> None:
    assert architecture_from_signature(signature) == architecture


def test_vcpu_power_uses_signature_when_name_is_vague() -> None:
    power = vcpu_power("AMD EPYC", "aws", signature=CpuSignature("AuthenticAMD", 25, 1, 1))
    assert power.architecture == "EPYC 3rd Gen"
    # The name wins over the signature.
    power = vcpu_power("AMD EPYC 7R32", "aws", signature=CpuSignature("AuthenticAMD", 25, 1, 1))
    assert power.architecture == "EPYC 2nd Gen"


# ---------------------------------------------------------------------------
# This machine (whatever it is): must not raise
# ---------------------------------------------------------------------------


def test_this_machine_does_not_raise() -> None:
    model = read_cpu_model()
    assert model is None or isinstance(model, str)
    assert count_sockets() >= 1
    virt = detect_virtualization()
    assert virt is None or isinstance(virt, str)
    if model:
        lookup_tdp(model)
    power = vcpu_power(model, virt, signature=read_cpu_signature())
    assert 0 < power.min_w < power.max_w


# ---------------------------------------------------------------------------
# The table builder
# ---------------------------------------------------------------------------

SHARED_DATA = Path(os.environ.get("CO2CB_SHARED_DATA", "/work/shared/data"))


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("Q2'25", 2025),
        ("04'16", 2016),
        ("Q216", 2016),
        ("Q12021", 2021),
        ("Q3 2016", 2016),
        ("3Q 2016", 2016),
        ("2Q18", 2018),
        ("10/10/2024", 2024),
        ("4/23/25", 2025),
        ("07/2020", 2020),
        ("2021-03-01", 2021),
        ("Channel: 7/27/2017, OEM: 9/5/2016", 2016),
        ("", None),
        ("soon", None),
        ("Q1 2099", None),
    ],
)
def test_parse_year(text: str, year: int | None) -> None:
    from tools.build_cpu_tables import parse_year

    assert parse_year(text, 2026) == year


@pytest.mark.parametrize(
    ("text", "watts"),
    [
        ("125.0", 125),
        ("280W", 280),
        ("35-54W", 54),
        ("155W / 170W", 170),
        ("10-25/25W", 25),
        ("45+W", 45),
        ("", None),
        ("27.29.5", None),
    ],
)
def test_parse_watts(text: str, watts: float | None) -> None:
    from tools.build_cpu_tables import parse_watts

    assert parse_watts(text) == watts


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="raw datasets not available")
def test_builder_reproduces_shipped_tables(tmp_path: Path) -> None:
    from tools.build_cpu_tables import main

    assert main(["--shared", str(SHARED_DATA), "--out", str(tmp_path)]) == 0
    for name in ("cpu_tdp.csv", "vcpu_power.csv"):
        shipped = (resources.files("co2cb") / "data" / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == shipped, f"{name} is stale: rebuild it"
