"""Build small ICC v2 RGB profiles in memory (matrix + gamma), so colour tests
need no profile files on disk."""

import struct

D50 = (0.9642, 1.0, 0.8249)

# Primaries as D50-adapted XYZ columns (red, green, blue), as in the published profiles.
ADOBE_RGB = {"r": (0.6097, 0.3111, 0.0195), "g": (0.2053, 0.6257, 0.0609), "b": (0.1492, 0.0632, 0.7446)}
DISPLAY_P3 = {"r": (0.5151, 0.2412, -0.0011), "g": (0.2920, 0.6922, 0.0419), "b": (0.1571, 0.0666, 0.7841)}
SRGB_D50 = ((0.4361, 0.3851, 0.1431), (0.2225, 0.7169, 0.0606), (0.0139, 0.0971, 0.7141))  # rows: X, Y, Z


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x, y, z) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _desc(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def rgb_profile(primaries: dict, gamma: float, name: str) -> bytes:
    tags = [
        (b"desc", _desc(name)),
        (b"wtpt", _xyz(*D50)),
        (b"rXYZ", _xyz(*primaries["r"])),
        (b"gXYZ", _xyz(*primaries["g"])),
        (b"bXYZ", _xyz(*primaries["b"])),
        (b"rTRC", _curve(gamma)),
        (b"gTRC", _curve(gamma)),
        (b"bTRC", _curve(gamma)),
        (b"cprt", b"text\0\0\0\0" + b"none\0\0\0\0"),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, body = b"", b""
    for sig, data in tags:
        while (offset + len(body)) % 4:
            body += b"\0"
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    total = 128 + table_size + len(body)
    header = (
        struct.pack(">I", total)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + b"\0" * 4
        + b"\0" * 8
        + b"\0" * 8
        + struct.pack(">I", 0)
        + _s15(D50[0])
        + _s15(D50[1])
        + _s15(D50[2])  # fmt: skip
        + b"lcms"
        + b"\0" * 16
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def _solve3(m, v):
    """Solve m @ x = v for a 3x3 matrix by Cramer's rule (no numpy needed)."""

    def det(a):
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    return [det([[v[r] if c == i else m[r][c] for c in range(3)] for r in range(3)]) / d for i in range(3)]


def expected_srgb(rgb, primaries: dict, gamma: float) -> tuple[int, int, int]:
    """What a colour in the given space is in sRGB: linearise, to XYZ (D50), to sRGB, encode."""
    lin = [(c / 255.0) ** gamma for c in rgb]
    cols = (primaries["r"], primaries["g"], primaries["b"])
    xyz = [sum(cols[j][i] * lin[j] for j in range(3)) for i in range(3)]
    out = []
    for v in _solve3(SRGB_D50, xyz):
        v = min(max(v, 0.0), 1.0)
        v = 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
        out.append(int(round(v * 255)))
    return tuple(out)
