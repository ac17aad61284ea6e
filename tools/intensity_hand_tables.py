"""Hand-made tables the builder joins to the raw files (build time only).

Nothing here is imported at run time: :mod:`tools.build_intensity_tables` writes
these choices into the embedded CSVs under ``co2cb/intensity/data/``. Every
mapping says where it points and why, so that a reader can check it.

Sources of the facts used here:

* Cloud region locations: ``cloud_region_grid_factors_ccf_{aws,azure}.csv``
  (Cloud Carbon Footprint, Apache-2.0) and ``cloud_regions_mlco2_impact.csv``
  (ML CO2 Impact, MIT) give region -> country / US state / city. Regions absent
  from both files come from the providers' public region lists (city only) and
  are marked ``hand``. Electricity Maps' ``data_centers.json`` (AGPL, not copied)
  was read as a cross-check only.
* US state -> grid: utility service territories and balancing-authority (BA)
  footprints (EIA-861 / EIA-930), as of 2024. See :data:`US_STATES`.
* Indian, Japanese, Brazilian, Italian, Malaysian and Danish subdivisions -> the
  Electricity Maps regional zone that contains them (regional grids of India,
  the ten Japanese utility areas, the four Brazilian SIN subsystems, the Italian
  bidding zones, Peninsular / Borneo Malaysia, DK1 / DK2).
"""

from __future__ import annotations

#: eGRID subregion acronym -> name (U.S. EPA eGRID2022 technical guide).
EGRID_NAMES: dict[str, str] = {
    "AKGD": "ASCC Alaska Grid",
    "AKMS": "ASCC Miscellaneous (Alaska)",
    "AZNM": "WECC Southwest",
    "CAMX": "WECC California",
    "ERCT": "ERCOT All (Texas)",
    "FRCC": "FRCC All (Florida)",
    "HIMS": "HICC Miscellaneous (Hawaii)",
    "HIOA": "HICC Oahu",
    "MROE": "MRO East",
    "MROW": "MRO West",
    "NEWE": "NPCC New England",
    "NWPP": "WECC Northwest",
    "NYCW": "NPCC NYC/Westchester",
    "NYLI": "NPCC Long Island",
    "NYUP": "NPCC Upstate NY",
    "PRMS": "Puerto Rico Miscellaneous",
    "RFCE": "RFC East",
    "RFCM": "RFC Michigan",
    "RFCW": "RFC West",
    "RMPA": "WECC Rockies",
    "SPNO": "SPP North",
    "SPSO": "SPP South",
    "SRMV": "SERC Mississippi Valley",
    "SRMW": "SERC Midwest",
    "SRSO": "SERC South",
    "SRTV": "SERC Tennessee Valley",
    "SRVC": "SERC Virginia/Carolina",
}

#: ISO 3166-1 alpha-3 -> alpha-2 where the raw files have none or a wrong one.
#: The UNFCCC/IFI file gives Cayman Islands "CY" (Cyprus) and puts KY/CYM on the
#: Canary Islands; Western Sahara is absent from it; Kosovo uses the
#: user-assigned code XK (European Commission, IMF, ISO 3166 practice).
ALPHA3_FIXES: dict[str, str] = {"CYM": "KY", "ESH": "EH", "NAM": "NA", "OWID_KOS": "XK"}

#: UNFCCC/IFI rows to fix by name: name -> code (``""`` drops the row).
#: Canary Islands get the ISO 3166-2 code of the islands; Azores and Madeira get
#: their ISO 3166-2 codes; Moldova lacks codes in the file; the Channel Islands
#: (Jersey and Guernsey, two grids) have no single code and are left out.
MARGINAL_NAME_FIXES: dict[str, str] = {
    "Canary Islands (Spain)": "ES-CN",
    "Cayman Islands": "KY",
    "Azores (Portugal)": "PT-20",
    "Madeira (Portugal)": "PT-30",
    "Moldova, Republic of": "MD",
    "Channel Islands (U.K)": "",
}

# ---------------------------------------------------------------------------
# US states -> grid.
#
# How it was chosen: each state maps to the Electricity Maps balancing authority
# (BA) that serves clearly most (about half or more) of the state's electricity
# customers, judged from utility service territories and BA footprints
# (EIA-861 / EIA-930, 2024): e.g. CAISO serves ~80 % of California's load, PJM
# all of Pennsylvania. Where no BA serves most of the state (split between
# several BAs: FL, KY, MS, MO, NC, SC, ND, SD, OR, WA, AZ), the state maps to the
# eGRID2022 subregion that covers most of its load instead. Territories with a
# country row of their own point to it.
# Entry: ISO 3166-2 code -> (state name, grid code, what serves it).
# ---------------------------------------------------------------------------
US_STATES: dict[str, tuple[str, str, str]] = {
    "US-AL": ("Alabama", "US-SE-SOCO", "the Southern Company balancing authority (Alabama Power)"),
    "US-AK": ("Alaska", "US-AK", "the Alaska grid (Railbelt and isolated systems)"),
    "US-AZ": ("Arizona", "AZNM", "several BAs (APS, SRP, TEP), so the eGRID WECC Southwest subregion"),
    "US-AR": ("Arkansas", "US-MIDW-MISO", "the MISO balancing authority (Entergy Arkansas, AECC)"),
    "US-CA": ("California", "US-CAL-CISO", "the CAISO balancing authority"),
    "US-CO": ("Colorado", "US-NW-PSCO", "the Public Service Company of Colorado balancing authority (Xcel)"),
    "US-CT": ("Connecticut", "US-NE-ISNE", "the ISO New England balancing authority"),
    "US-DE": ("Delaware", "US-MIDA-PJM", "the PJM balancing authority"),
    "US-DC": ("District of Columbia", "US-MIDA-PJM", "the PJM balancing authority (Pepco)"),
    "US-FL": ("Florida", "FRCC", "several BAs (FPL, Duke, TECO, JEA...), so the eGRID FRCC subregion"),
    "US-GA": ("Georgia", "US-SE-SOCO", "the Southern Company balancing authority (Georgia Power)"),
    "US-HI": ("Hawaii", "US-HI", "the Hawaiian island grids"),
    "US-ID": ("Idaho", "US-NW-IPCO", "the Idaho Power balancing authority"),
    "US-IL": ("Illinois", "US-MIDA-PJM", "the PJM balancing authority (ComEd, northern Illinois)"),
    "US-IN": ("Indiana", "US-MIDW-MISO", "the MISO balancing authority"),
    "US-IA": ("Iowa", "US-MIDW-MISO", "the MISO balancing authority (MidAmerican, Alliant)"),
    "US-KS": ("Kansas", "US-CENT-SWPP", "the Southwest Power Pool balancing authority (Evergy)"),
    "US-KY": ("Kentucky", "SRTV", "several BAs (LG&E/KU, TVA, PJM), so the eGRID SERC Tennessee Valley subregion"),
    "US-LA": ("Louisiana", "US-MIDW-MISO", "the MISO balancing authority (Entergy, Cleco)"),
    "US-ME": ("Maine", "US-NE-ISNE", "the ISO New England balancing authority"),
    "US-MD": ("Maryland", "US-MIDA-PJM", "the PJM balancing authority"),
    "US-MA": ("Massachusetts", "US-NE-ISNE", "the ISO New England balancing authority"),
    "US-MI": ("Michigan", "US-MIDW-MISO", "the MISO balancing authority (DTE, Consumers)"),
    "US-MN": ("Minnesota", "US-MIDW-MISO", "the MISO balancing authority"),
    "US-MS": ("Mississippi", "SRMV", "several BAs (MISO, TVA, Southern), so eGRID SERC Mississippi Valley"),
    "US-MO": ("Missouri", "SRMW", "several BAs (MISO, SPP, AECI), so the eGRID SERC Midwest subregion"),
    "US-MT": ("Montana", "US-NW-NWMT", "the NorthWestern Energy balancing authority"),
    "US-NE": ("Nebraska", "US-CENT-SWPP", "the Southwest Power Pool balancing authority (NPPD, OPPD)"),
    "US-NV": ("Nevada", "US-NW-NEVP", "the Nevada Power balancing authority (NV Energy)"),
    "US-NH": ("New Hampshire", "US-NE-ISNE", "the ISO New England balancing authority"),
    "US-NJ": ("New Jersey", "US-MIDA-PJM", "the PJM balancing authority"),
    "US-NM": ("New Mexico", "US-SW-PNM", "the Public Service Company of New Mexico balancing authority"),
    "US-NY": ("New York", "US-NY-NYIS", "the New York ISO balancing authority"),
    "US-NC": ("North Carolina", "SRVC", "two BAs (Duke Carolinas, Duke Progress), so eGRID SERC Virginia/Carolina"),
    "US-ND": ("North Dakota", "MROW", "several BAs (MISO, SPP, WAPA), so the eGRID MRO West subregion"),
    "US-OH": ("Ohio", "US-MIDA-PJM", "the PJM balancing authority"),
    "US-OK": ("Oklahoma", "US-CENT-SWPP", "the Southwest Power Pool balancing authority (OG&E, PSO)"),
    "US-OR": ("Oregon", "NWPP", "several BAs (PGE, PacifiCorp, BPA), so the eGRID WECC Northwest subregion"),
    "US-PA": ("Pennsylvania", "US-MIDA-PJM", "the PJM balancing authority"),
    "US-RI": ("Rhode Island", "US-NE-ISNE", "the ISO New England balancing authority"),
    "US-SC": ("South Carolina", "SRVC", "several BAs (Dominion, Santee Cooper, Duke), so eGRID SERC Virginia/Carolina"),
    "US-SD": ("South Dakota", "MROW", "several BAs (SPP, MISO, WAPA), so the eGRID MRO West subregion"),
    "US-TN": ("Tennessee", "US-TEN-TVA", "the Tennessee Valley Authority balancing authority"),
    "US-TX": ("Texas", "US-TEX-ERCO", "the ERCOT balancing authority"),
    "US-UT": ("Utah", "US-NW-PACE", "the PacifiCorp East balancing authority (Rocky Mountain Power)"),
    "US-VT": ("Vermont", "US-NE-ISNE", "the ISO New England balancing authority"),
    "US-VA": ("Virginia", "US-MIDA-PJM", "the PJM balancing authority (Dominion)"),
    "US-WA": ("Washington", "NWPP", "several BAs (BPA, Puget Sound, Seattle, PUDs), so eGRID WECC Northwest"),
    "US-WV": ("West Virginia", "US-MIDA-PJM", "the PJM balancing authority"),
    "US-WI": ("Wisconsin", "US-MIDW-MISO", "the MISO balancing authority"),
    "US-WY": ("Wyoming", "US-NW-PACE", "the PacifiCorp East balancing authority (Rocky Mountain Power)"),
    # Territories: ISO 3166-2 codes that are also ISO 3166-1 countries.
    "US-PR": ("Puerto Rico", "PR", "its own island grid (country row PR)"),
    "US-VI": ("U.S. Virgin Islands", "VI", "its own island grids (country row VI)"),
    "US-GU": ("Guam", "GU", "its own island grid (country row GU)"),
    "US-AS": ("American Samoa", "AS", "its own island grids (country row AS)"),
}

#: Other ISO 3166-2 codes that name a country of their own.
TERRITORY_CODES: dict[str, tuple[str, str]] = {
    "CN-HK": ("Hong Kong", "HK"),
    "CN-MO": ("Macao", "MO"),
    "CN-TW": ("Taiwan", "TW"),
    "FR-GF": ("French Guiana", "GF"),
    "FR-GP": ("Guadeloupe", "GP"),
    "FR-MQ": ("Martinique", "MQ"),
    "FR-RE": ("Réunion", "RE"),
    "FR-NC": ("New Caledonia", "NC"),
    "FR-PF": ("French Polynesia", "PF"),
    "FR-PM": ("Saint Pierre and Miquelon", "PM"),
    "FR-YT": ("Mayotte", "YT"),
    "NL-AW": ("Aruba", "AW"),
    "NL-CW": ("Curaçao", "CW"),
    "DK-FO": ("Faroe Islands", "FO"),
    "DK-GL": ("Greenland", "GL"),
    "FI-01": ("Åland", "AX"),
}

#: Codes in common use that are not ISO 3166-1: code -> (name, grid, via).
OTHER_CODES: dict[str, tuple[str, str, str]] = {
    "UK": ("United Kingdom", "GB", "UK is the exceptionally reserved code of the United Kingdom -> GB"),
    "EL": ("Greece", "GR", "EL is the European Union's code for Greece -> GR"),
}

# Canadian provinces (CA-QC...) and Australian states (AU-NSW...) are Electricity
# Maps zone keys and ISO 3166-2 codes at once: they need no alias.

#: Other subdivision -> zone aliases: code -> (name, zone, what serves it).
OTHER_SUBDIVISIONS: dict[str, tuple[str, str, str]] = {
    "AU-ACT": ("Australian Capital Territory", "AU-NSW", "the New South Wales region of the NEM"),
    "ES-CN": ("Canary Islands", "ES-CN-TE", "island grids; Tenerife, the largest, is used"),
    "ES-IB": ("Balearic Islands", "ES-IB-MA", "island grids; Mallorca, the largest, is used"),
    "PT-30": ("Madeira", "PT-MA", "the Madeira island grid"),
    "FR-20R": ("Corsica", "FR-COR", "the Corsican grid"),
    # Isolated systems without a row of their own: the national row, said plainly.
    "BR-RR": ("Roraima", "BR", "an isolated system not in the database, so the national row"),
    "IN-AN": ("Andaman and Nicobar Islands", "IN", "island grids not in the database, so the national row"),
    "IN-LD": ("Lakshadweep", "IN", "island grids not in the database, so the national row"),
    # Denmark: DK1 (Jutland, Funen) and DK2 (Zealand); Bornholm (in DK-84) has its own zone DK-BHM.
    "DK-81": ("Nordjylland", "DK-DK1", "the West Denmark bidding zone DK1"),
    "DK-82": ("Midtjylland", "DK-DK1", "the West Denmark bidding zone DK1"),
    "DK-83": ("Syddanmark", "DK-DK1", "the West Denmark bidding zone DK1"),
    "DK-84": ("Hovedstaden", "DK-DK2", "the East Denmark bidding zone DK2"),
    "DK-85": ("Sjælland", "DK-DK2", "the East Denmark bidding zone DK2"),
}

# India: states and union territories -> the five regional grids (CEA / Grid-India).
_IN_REGIONS = {
    "IN-NO": ("Northern", ["CH", "DL", "HR", "HP", "JK", "LA", "PB", "RJ", "UP", "UK", "UT"]),
    "IN-WE": ("Western", ["CG", "CT", "GA", "GJ", "MP", "MH", "DH", "DN", "DD"]),
    "IN-SO": ("Southern", ["AP", "KA", "KL", "PY", "TN", "TG", "TS"]),
    "IN-EA": ("Eastern", ["BR", "JH", "OD", "OR", "SK", "WB"]),
    "IN-NE": ("North-Eastern", ["AR", "AS", "MN", "ML", "MZ", "NL", "TR"]),
}
IN_STATE_NAMES: dict[str, str] = {
    "CH": "Chandigarh",
    "DL": "Delhi",
    "HR": "Haryana",
    "HP": "Himachal Pradesh",
    "JK": "Jammu and Kashmir",
    "LA": "Ladakh",
    "PB": "Punjab",
    "RJ": "Rajasthan",
    "UP": "Uttar Pradesh",
    "UK": "Uttarakhand",
    "UT": "Uttarakhand",
    "CG": "Chhattisgarh",
    "CT": "Chhattisgarh",
    "GA": "Goa",
    "GJ": "Gujarat",
    "MP": "Madhya Pradesh",
    "MH": "Maharashtra",
    "DH": "Dadra and Nagar Haveli and Daman and Diu",
    "DN": "Dadra and Nagar Haveli",
    "DD": "Daman and Diu",
    "AP": "Andhra Pradesh",
    "KA": "Karnataka",
    "KL": "Kerala",
    "PY": "Puducherry",
    "TN": "Tamil Nadu",
    "TG": "Telangana",
    "TS": "Telangana",
    "BR": "Bihar",
    "JH": "Jharkhand",
    "OD": "Odisha",
    "OR": "Odisha",
    "SK": "Sikkim",
    "WB": "West Bengal",
    "AR": "Arunachal Pradesh",
    "AS": "Assam",
    "MN": "Manipur",
    "ML": "Meghalaya",
    "MZ": "Mizoram",
    "NL": "Nagaland",
    "TR": "Tripura",
}

# Japan: prefectures (JP-01..JP-47) -> the ten utility areas. Shizuoka is split at
# the Fuji river; most of its load is west of it (Chūbu).
_JP_AREAS = {
    "JP-HKD": ("Hokkaidō", [1]),
    "JP-TH": ("Tōhoku", [2, 3, 4, 5, 6, 7, 15]),
    "JP-TK": ("Tōkyō (TEPCO)", [8, 9, 10, 11, 12, 13, 14, 19]),
    "JP-CB": ("Chūbu", [20, 21, 22, 23, 24]),
    "JP-HR": ("Hokuriku", [16, 17, 18]),
    "JP-KN": ("Kansai", [25, 26, 27, 28, 29, 30]),
    "JP-CG": ("Chūgoku", [31, 32, 33, 34, 35]),
    "JP-SK": ("Shikoku", [36, 37, 38, 39]),
    "JP-KY": ("Kyūshū", [40, 41, 42, 43, 44, 45, 46]),
    "JP-ON": ("Okinawa", [47]),
}
JP_PREFECTURES: list[str] = [
    "Hokkaidō",
    "Aomori",
    "Iwate",
    "Miyagi",
    "Akita",
    "Yamagata",
    "Fukushima",
    "Ibaraki",
    "Tochigi",
    "Gunma",
    "Saitama",
    "Chiba",
    "Tōkyō",
    "Kanagawa",
    "Niigata",
    "Toyama",
    "Ishikawa",
    "Fukui",
    "Yamanashi",
    "Nagano",
    "Gifu",
    "Shizuoka",
    "Aichi",
    "Mie",
    "Shiga",
    "Kyōto",
    "Ōsaka",
    "Hyōgo",
    "Nara",
    "Wakayama",
    "Tottori",
    "Shimane",
    "Okayama",
    "Hiroshima",
    "Yamaguchi",
    "Tokushima",
    "Kagawa",
    "Ehime",
    "Kōchi",
    "Fukuoka",
    "Saga",
    "Nagasaki",
    "Kumamoto",
    "Ōita",
    "Miyazaki",
    "Kagoshima",
    "Okinawa",
]

# Brazil: states -> the four SIN subsystems. Acre and Rondônia belong to the
# South-East/Centre-West subsystem; Roraima was isolated from the SIN until 2025
# and maps to the national row (see OTHER_SUBDIVISIONS).
_BR_SUBSYSTEMS = {
    "BR-CS": ("South-East/Centre-West", ["SP", "RJ", "MG", "ES", "GO", "DF", "MT", "MS", "AC", "RO"]),
    "BR-S": ("South", ["PR", "SC", "RS"]),
    "BR-NE": ("North-East", ["BA", "SE", "AL", "PE", "PB", "RN", "CE", "PI"]),
    "BR-N": ("North", ["PA", "TO", "MA", "AP", "AM"]),
}
BR_STATE_NAMES: dict[str, str] = {
    "SP": "São Paulo",
    "RJ": "Rio de Janeiro",
    "MG": "Minas Gerais",
    "ES": "Espírito Santo",
    "GO": "Goiás",
    "DF": "Distrito Federal",
    "MT": "Mato Grosso",
    "MS": "Mato Grosso do Sul",
    "AC": "Acre",
    "RO": "Rondônia",
    "PR": "Paraná",
    "SC": "Santa Catarina",
    "RS": "Rio Grande do Sul",
    "BA": "Bahia",
    "SE": "Sergipe",
    "AL": "Alagoas",
    "PE": "Pernambuco",
    "PB": "Paraíba",
    "RN": "Rio Grande do Norte",
    "CE": "Ceará",
    "PI": "Piauí",
    "PA": "Pará",
    "TO": "Tocantins",
    "MA": "Maranhão",
    "AP": "Amapá",
    "AM": "Amazonas",
}

# Italy: regions (ISO 3166-2 numeric codes) -> bidding zones (Terna, from 2021:
# Umbria moved to Centro-Sud, Molise to Sud; Calabria, a zone of its own since
# 2021, is not split out by Electricity Maps and is served here by Sud).
# Province codes (IT-MI...) are not mapped: IT-NO and IT-SO are Electricity Maps
# zone keys (North, South) and win over the provinces of Novara and Sondrio.
_IT_ZONES = {
    "IT-NO": (
        "North",
        {
            "21": "Piemonte",
            "23": "Valle d'Aosta",
            "25": "Lombardia",
            "32": "Trentino-Alto Adige",
            "34": "Veneto",
            "36": "Friuli-Venezia Giulia",
            "42": "Liguria",
            "45": "Emilia-Romagna",
        },
    ),
    "IT-CNO": ("Central North", {"52": "Toscana", "57": "Marche"}),
    "IT-CSO": ("Central South", {"55": "Umbria", "62": "Lazio", "65": "Abruzzo", "72": "Campania"}),
    "IT-SO": ("South", {"67": "Molise", "75": "Puglia", "77": "Basilicata", "78": "Calabria"}),
    "IT-SIC": ("Sicily", {"82": "Sicilia"}),
    "IT-SAR": ("Sardinia", {"88": "Sardegna"}),
}

# Malaysia: Sabah, Sarawak and Labuan are on Borneo; the other states on the Peninsula.
_MY_ZONES = {
    "MY-EM": ("Borneo", {"12": "Sabah", "13": "Sarawak", "15": "Labuan"}),
    "MY-WM": (
        "Peninsular",
        {
            "01": "Johor",
            "02": "Kedah",
            "03": "Kelantan",
            "04": "Melaka",
            "05": "Negeri Sembilan",
            "06": "Pahang",
            "07": "Pulau Pinang",
            "08": "Perak",
            "09": "Perlis",
            "10": "Selangor",
            "11": "Terengganu",
            "14": "Kuala Lumpur",
            "16": "Putrajaya",
        },
    ),
}


def subdivision_aliases() -> list[tuple[str, str, str, str]]:
    """All ISO 3166-2 aliases (and UK, EL) as ``(code, name, target grid, via)``."""
    out: list[tuple[str, str, str, str]] = []
    for code, (name, grid, what) in US_STATES.items():
        out.append((code, f"{name} (US)", grid, f"{code} is served mainly by {what} ({grid})"))
    for code, (name, grid) in TERRITORY_CODES.items():
        out.append((code, name, grid, f"{code} ({name}) has a grid row of its own: {grid}"))
    for code, (name, grid, via) in OTHER_CODES.items():
        out.append((code, name, grid, via))
    for code, (name, grid, what) in OTHER_SUBDIVISIONS.items():
        out.append((code, name, grid, f"{code} ({name}) is served by {what} ({grid})"))
    for grid, (region, states) in _IN_REGIONS.items():
        for st in states:
            code = f"IN-{st}"
            name = IN_STATE_NAMES[st]
            out.append((code, f"{name} (IN)", grid, f"{code} ({name}) is in India's {region} regional grid ({grid})"))
    for grid, (area, prefs) in _JP_AREAS.items():
        for num in prefs:
            code = f"JP-{num:02d}"
            name = JP_PREFECTURES[num - 1]
            out.append((code, f"{name} (JP)", grid, f"{code} ({name}) is in the {area} utility area ({grid})"))
    for grid, (sub, states) in _BR_SUBSYSTEMS.items():
        for st in states:
            code = f"BR-{st}"
            name = BR_STATE_NAMES[st]
            out.append((code, f"{name} (BR)", grid, f"{code} ({name}) is in the {sub} subsystem of the SIN ({grid})"))
    for grid, (zone, regions) in _IT_ZONES.items():
        for num, name in regions.items():
            code = f"IT-{num}"
            out.append((code, f"{name} (IT)", grid, f"{code} ({name}) is in the {zone} Italy bidding zone ({grid})"))
    for grid, (part, states) in _MY_ZONES.items():
        for num, name in states.items():
            code = f"MY-{num}"
            out.append((code, f"{name} (MY)", grid, f"{code} ({name}) is on the {part} Malaysia grid ({grid})"))
    return out


# ---------------------------------------------------------------------------
# Cloud regions (AWS, Azure) -> grid.
#
# How it was chosen: the region's location (country, US state, city) from the
# CCF and ML CO2 Impact files, or from the provider's public region list when
# the region is newer than both files ("hand"); then the finest grid row that
# serves that place: the Electricity Maps balancing authority or regional zone
# where the database has one (US BAs, Canadian provinces, Australian states,
# Japanese areas, Indian regions, Nordic and Italian bidding zones, Brazilian
# subsystems), else the country. GCP regions carry Google's own yearly figure
# and are not aliases; their grid is listed for reference only.
# Entry: region -> (place, grid).
# ---------------------------------------------------------------------------
AWS_REGIONS: dict[str, tuple[str, str]] = {
    "us-east-1": ("Northern Virginia (Dominion, PJM)", "US-MIDA-PJM"),
    "us-east-2": ("Ohio (AEP Ohio, PJM)", "US-MIDA-PJM"),
    "us-west-1": ("Northern California (CAISO)", "US-CAL-CISO"),
    "us-west-2": ("Oregon, Boardman/Umatilla (Bonneville Power Administration area)", "US-NW-BPAT"),
    "us-gov-east-1": ("Ohio (PJM)", "US-MIDA-PJM"),
    "us-gov-west-1": ("the US Pacific Northwest (eGRID WECC Northwest)", "NWPP"),
    "af-south-1": ("Cape Town", "ZA"),
    "ap-east-1": ("Hong Kong", "HK"),
    "ap-south-1": ("Mumbai (Western India grid)", "IN-WE"),
    "ap-northeast-3": ("Osaka (Kansai area)", "JP-KN"),
    "ap-northeast-2": ("Seoul", "KR"),
    "ap-southeast-1": ("Singapore", "SG"),
    "ap-southeast-2": ("Sydney (New South Wales)", "AU-NSW"),
    "ap-northeast-1": ("Tokyo (TEPCO area)", "JP-TK"),
    "ca-central-1": ("Montréal (Québec)", "CA-QC"),
    "cn-north-1": ("Beijing", "CN"),
    "cn-northwest-1": ("Ningxia", "CN"),
    "eu-central-1": ("Frankfurt", "DE"),
    "eu-west-1": ("Dublin", "IE"),
    "eu-west-2": ("London", "GB"),
    "eu-south-1": ("Milan (North Italy bidding zone)", "IT-NO"),
    "eu-west-3": ("Paris", "FR"),
    "eu-north-1": ("Stockholm (bidding zone SE3)", "SE-SE3"),
    "me-south-1": ("Bahrain", "BH"),
    "sa-east-1": ("São Paulo (South-East/Centre-West subsystem)", "BR-CS"),
}
AWS_REGIONS_HAND: dict[str, tuple[str, str]] = {
    "ap-south-2": ("Hyderabad (Southern India grid)", "IN-SO"),
    "ap-southeast-3": ("Jakarta", "ID"),
    "ap-southeast-4": ("Melbourne (Victoria)", "AU-VIC"),
    "ap-southeast-5": ("Malaysia (Peninsular grid)", "MY-WM"),
    "ap-southeast-7": ("Thailand", "TH"),
    "ap-east-2": ("Taipei", "TW"),
    "ca-west-1": ("Calgary (Alberta)", "CA-AB"),
    "eu-central-2": ("Zurich", "CH"),
    "eu-south-2": ("Aragón, Spain", "ES"),
    "il-central-1": ("Tel Aviv", "IL"),
    "me-central-1": ("United Arab Emirates", "AE"),
    "mx-central-1": ("Querétaro", "MX"),
}

#: Azure: CCF's display names ("Central US") are matched by removing spaces and
#: lower-casing, which is Azure's own rule for short names ("centralus").
AZURE_REGIONS: dict[str, tuple[str, str]] = {
    "centralus": ("Iowa, Des Moines (MISO)", "US-MIDW-MISO"),
    "eastus": ("Virginia (Dominion, PJM)", "US-MIDA-PJM"),
    "eastus2": ("Virginia, Boydton (Dominion, PJM)", "US-MIDA-PJM"),
    "eastus3": ("Georgia, Atlanta (Southern Company)", "US-SE-SOCO"),
    "northcentralus": ("Illinois, Chicago (ComEd, PJM)", "US-MIDA-PJM"),
    "southcentralus": ("Texas, San Antonio (ERCOT)", "US-TEX-ERCO"),
    "westcentralus": ("Wyoming, Cheyenne (WAPA Rocky Mountain)", "US-NW-WACM"),
    "westus": ("California, San Francisco Bay Area (CAISO)", "US-CAL-CISO"),
    "westus2": ("Washington, Quincy (Grant County PUD)", "US-NW-GCPD"),
    "westus3": ("Arizona, Phoenix area (APS)", "US-SW-AZPS"),
    "eastasia": ("Hong Kong", "HK"),
    "southeastasia": ("Singapore", "SG"),
    "northeurope": ("Ireland, Dublin", "IE"),
    "westeurope": ("Netherlands, Amsterdam", "NL"),
    "centralindia": ("Pune (Western India grid)", "IN-WE"),
    "southindia": ("Chennai (Southern India grid)", "IN-SO"),
    "westindia": ("Mumbai (Western India grid)", "IN-WE"),
    "uksouth": ("London", "GB"),
    "ukwest": ("Cardiff", "GB"),
    "francecentral": ("Paris", "FR"),
    "francesouth": ("Marseille", "FR"),
    "finlandcentral": ("Helsinki", "FI"),
    "germanywestcentral": ("Frankfurt", "DE"),
    "belgiumcentral": ("Brussels", "BE"),
    "swedencentral": ("Gävle (bidding zone SE3)", "SE-SE3"),
    "japanwest": ("Osaka (Kansai area)", "JP-KN"),
    "japaneast": ("Tokyo (TEPCO area)", "JP-TK"),
    "brazilsouth": ("São Paulo (South-East/Centre-West subsystem)", "BR-CS"),
    "australiaeast": ("New South Wales, Sydney", "AU-NSW"),
    "australiasoutheast": ("Victoria, Melbourne", "AU-VIC"),
    "australiacentral": ("Canberra (NSW region of the NEM)", "AU-NSW"),
    "australiacentral2": ("Canberra (NSW region of the NEM)", "AU-NSW"),
    "canadacentral": ("Toronto (Ontario)", "CA-ON"),
    "canadaeast": ("Québec City (Québec)", "CA-QC"),
    "koreacentral": ("Seoul", "KR"),
    "koreasouth": ("Busan", "KR"),
    "southafricanorth": ("Johannesburg", "ZA"),
    "southafricawest": ("Cape Town", "ZA"),
}
AZURE_REGIONS_HAND: dict[str, tuple[str, str]] = {
    "uaenorth": ("Dubai", "AE"),
    "uaecentral": ("Abu Dhabi", "AE"),
    "switzerlandnorth": ("Zurich", "CH"),
    "switzerlandwest": ("Geneva", "CH"),
    "norwayeast": ("Oslo (bidding zone NO1)", "NO-NO1"),
    "norwaywest": ("Stavanger (bidding zone NO2)", "NO-NO2"),
    "germanynorth": ("Berlin", "DE"),
    "polandcentral": ("Warsaw", "PL"),
    "italynorth": ("Milan (North Italy bidding zone)", "IT-NO"),
    "spaincentral": ("Madrid", "ES"),
    "qatarcentral": ("Doha", "QA"),
    "israelcentral": ("Israel", "IL"),
    "mexicocentral": ("Querétaro", "MX"),
    "newzealandnorth": ("Auckland", "NZ"),
    "brazilsoutheast": ("Rio de Janeiro (South-East/Centre-West subsystem)", "BR-CS"),
    "jioindiawest": ("Jamnagar, Gujarat (Western India grid)", "IN-WE"),
    "jioindiacentral": ("Nagpur, Maharashtra (Western India grid)", "IN-WE"),
    "indonesiacentral": ("Jakarta", "ID"),
    "malaysiawest": ("Kuala Lumpur (Peninsular grid)", "MY-WM"),
    "chilecentral": ("Santiago (Sistema Eléctrico Nacional)", "CL-SEN"),
}

#: GCP region -> grid serving it (reference only: GCP rows carry Google's figure).
GCP_GRID: dict[str, str] = {
    "africa-south1": "ZA",
    "asia-east1": "TW",
    "asia-east2": "HK",
    "asia-northeast1": "JP-TK",
    "asia-northeast2": "JP-KN",
    "asia-northeast3": "KR",
    "asia-south1": "IN-WE",
    "asia-south2": "IN-NO",
    "asia-southeast1": "SG",
    "asia-southeast2": "ID",
    "australia-southeast1": "AU-NSW",
    "australia-southeast2": "AU-VIC",
    "europe-central2": "PL",
    "europe-north1": "FI",
    "europe-north2": "SE-SE3",
    "europe-southwest1": "ES",
    "europe-west1": "BE",
    "europe-west2": "GB",
    "europe-west3": "DE",
    "europe-west4": "NL",
    "europe-west6": "CH",
    "europe-west8": "IT-NO",
    "europe-west9": "FR",
    "europe-west10": "DE",
    "europe-west12": "IT-NO",
    "me-central1": "QA",
    "me-central2": "SA",
    "me-west1": "IL",
    "northamerica-northeast1": "CA-QC",
    "northamerica-northeast2": "CA-ON",
    "northamerica-south1": "MX",
    "southamerica-east1": "BR-CS",
    "southamerica-west1": "CL-SEN",
    "us-central1": "US-MIDW-MISO",
    "us-central2": "US-CENT-SWPP",
    "us-east1": "US-CAR-SC",
    "us-east2": "US-SE-SOCO",
    "us-east4": "US-MIDA-PJM",
    "us-east5": "US-MIDA-PJM",
    "us-south1": "US-TEX-ERCO",
    "us-west1": "US-NW-BPAT",
    "us-west2": "US-CAL-CISO",
    "us-west3": "US-NW-PACE",
    "us-west4": "US-NW-NEVP",
}
