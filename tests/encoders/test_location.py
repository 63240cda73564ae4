"""Property tests of the location encoders (geoseek.encoders.location)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoseek.encoders.location.base import geometric_frequencies, snap_odd
from geoseek.encoders.location.harmonics import legendre_normalized
from geoseek.encoders.registry import LOCATION_ENCODERS, create_location_encoder, list_location_encoders
from geoseek.errors import InvalidInputError
from geoseek.geo import CoordinateError

ALL = [
    "xyz", "wrap", "wrap_ffn", "rbf", "rff", "grid", "theory", "nerf",
    "sphereC", "sphereC+", "sphereM", "sphereM+", "dfs", "spherical_harmonics", "geoclip",
]  # fmt: skip
_CACHE: dict[str, torch.nn.Module] = {}


def enc(name: str, **params) -> torch.nn.Module:
    """Encoders with default parameters are built once (GeoCLIP loads 38 MB of weights)."""
    if params:
        return create_location_encoder(name, **params)
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = create_location_encoder(name).eval()
    return _CACHE[name]


def pe(name: str, pts, **params) -> np.ndarray:
    with torch.no_grad():
        return enc(name, **params).encode_position(torch.tensor(pts, dtype=torch.float32)).double().numpy()


def test_every_encoder_is_registered():
    assert set(list_location_encoders()) == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_input_kinds(name):
    m = enc(name)
    pts = [[2.35, 48.86], [-180.0, -90.0], [180.0, 90.0]]
    with torch.no_grad():
        a = m.encode_position(np.array(pts))
        b = m.encode_position(torch.tensor(pts, dtype=torch.float64))
        c = m.encode_position(pts)
        one = m.encode_position((2.35, 48.86))
        y = m(pts)
    assert a.shape == (3, m.pos_dim) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(a, c)
    assert one.shape == (1, m.pos_dim) and torch.allclose(one[0], a[0])
    assert y.shape == (3, m.out_dim)
    assert torch.isfinite(a).all() and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["sphereM", "grid", "spherical_harmonics", "rbf"])
def test_chunked_encoding_equals_one_block(name):
    m = enc(name)
    x = torch.rand(2 * m.chunk_size + 17, 2, dtype=torch.float32) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
    with torch.no_grad():
        whole = m.encode_position(x)
        ref = m._encode(x)
    assert whole.shape == ref.shape
    assert torch.allclose(whole, ref, atol=1e-6)


@pytest.mark.parametrize(
    "bad, match",
    [
        ([[181.0, 0.0]], "lon must be in"),
        ([[0.0, -90.5]], r"lat in \[-90, 90\]"),
        ([[0.0, float("nan")]], r"lonlat\[0\]"),
        ([[0.0, 0.0, 0.0]], "shape"),
    ],
)
@pytest.mark.parametrize("as_tensor", [False, True])
def test_invalid_input_is_a_clear_error(bad, match, as_tensor):
    x = torch.tensor(bad) if as_tensor else bad
    with pytest.raises(CoordinateError, match=match):
        enc("sphereM").encode_position(x)


def test_unknown_parameter_names_the_known_ones():
    with pytest.raises(InvalidInputError, match="frequency_num"):
        create_location_encoder("sphereM", frequency_number=3)
    with pytest.raises(InvalidInputError, match="head must be one of"):
        create_location_encoder("xyz", head="transformer")
    with pytest.raises(InvalidInputError, match="min_radius"):
        create_location_encoder("sphereC", min_radius=2.0, max_radius=1.0)


# --- periodicity and continuity (checked in both directions against the declared flags) ------------

LATS = [-89.0, -60.0, -23.0, 0.0, 11.0, 45.0, 77.0, 89.0]


@pytest.mark.parametrize("name", ALL)
def test_longitude_periodicity_matches_declaration(name):
    west = pe(name, [[-180.0, lat] for lat in LATS])
    east = pe(name, [[180.0, lat] for lat in LATS])
    diff = np.abs(west - east).max()
    if LOCATION_ENCODERS.tags(name)["periodic_lon"]:
        assert diff < 1e-4, f"{name}: encoding at -180 differs from +180 by {diff}"
    else:
        assert diff > 1e-3, f"{name} is declared non-periodic but -180 ≡ 180 (diff {diff})"


@pytest.mark.parametrize("name", ALL)
def test_continuity_across_the_dateline(name):
    """Two points 0.02° apart across the dateline are as close as two points 0.02° apart at lon 0."""
    e = 0.01
    cross = np.linalg.norm(pe(name, [[180.0 - e, lat] for lat in LATS]) - pe(name, [[-180.0 + e, lat] for lat in LATS]), axis=1)
    ref = np.linalg.norm(pe(name, [[-e, lat] for lat in LATS]) - pe(name, [[e, lat] for lat in LATS]), axis=1)
    if LOCATION_ENCODERS.tags(name)["periodic_lon"]:
        assert (cross <= 2 * ref + 1e-3).all(), (name, cross, ref)
    else:
        assert (cross > 10 * ref + 1e-3).any(), (name, cross, ref)


LONS = [-170.0, -95.0, -30.0, 0.0, 12.5, 60.0, 135.0]


@pytest.mark.parametrize("name", ALL)
def test_continuity_across_the_poles(name):
    """(λ, 90−ε) and (λ+180, 90−ε) are 2ε apart on the sphere; so are (λ, −ε) and (λ, +ε)."""
    e = 0.01
    flip = [((lon + 360.0) % 360.0) - 180.0 for lon in LONS]
    pole_n = np.linalg.norm(pe(name, [[l, 90 - e] for l in LONS]) - pe(name, [[f, 90 - e] for f in flip]), axis=1)
    pole_s = np.linalg.norm(pe(name, [[l, -90 + e] for l in LONS]) - pe(name, [[f, -90 + e] for f in flip]), axis=1)
    ref = np.linalg.norm(pe(name, [[l, -e] for l in LONS]) - pe(name, [[l, e] for l in LONS]), axis=1)
    at_pole = pe(name, [[l, 90.0] for l in LONS])
    spread = np.abs(at_pole - at_pole[0]).max()
    if LOCATION_ENCODERS.tags(name)["pole_continuous"]:
        assert (pole_n <= 3 * ref + 1e-3).all() and (pole_s <= 3 * ref + 1e-3).all(), (name, pole_n, pole_s, ref)
        assert spread < 1e-4, f"{name}: the north pole gets different encodings ({spread})"
    else:
        assert spread > 1e-3 or (pole_n > 10 * ref + 1e-3).any(), f"{name} is declared discontinuous at the poles"


def test_paper_frequencies_without_snapping_break_periodicity():
    """Why ``snap=True`` is the default: the paper's real-valued ω_s are not 2π-periodic in λ."""
    kw = {"snap": False, "head": "none"}
    west, east = pe("sphereM", [[-180.0, 10.0]], **kw), pe("sphereM", [[180.0, 10.0]], **kw)
    assert np.abs(west - east).max() > 0.1
    assert np.abs(pe("sphereM", [[-180.0, 10.0]]) - pe("sphereM", [[180.0, 10.0]])).max() < 1e-4


def test_snap_odd_gives_distinct_odd_integers():
    f = snap_odd(geometric_frequencies(32, 0.01, 1.0))
    assert (f % 2 == 1).all() and (np.diff(f) > 0).all() and f[0] == 1 and 95 <= f[-1] <= 105
    assert np.allclose(geometric_frequencies(3, 1.0, 100.0), [1.0, 0.1, 0.01])


# --- hand-computed values -------------------------------------------------------------------------


def _xyz(lon, lat):
    lam, phi = math.radians(lon), math.radians(lat)
    return math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)


def test_xyz_and_wrap_values():
    assert np.allclose(pe("xyz", [[0, 0], [90, 0], [0, 90], [180, 0]]), [[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]], atol=1e-6)
    # wrap: [sin(π lon/180), sin(π lat/90), cos(π lon/180), cos(π lat/90)]
    assert np.allclose(pe("wrap", [[90, 45]]), [[1, 1, 0, 0]], atol=1e-6)
    assert np.allclose(pe("wrap_ffn", [[-90, -45]]), [[-1, -1, 0, 0]], atol=1e-6)


def test_grid_and_theory_values():
    # frequencies 1/r for r = 1, 10 (degrees): blocks sin(lon f), cos(lon f), sin(lat f), cos(lat f)
    lon, lat = 30.0, -20.0
    f = [1.0, 0.1]
    want = [math.sin(lon * w) for w in f] + [math.cos(lon * w) for w in f]
    want += [math.sin(lat * w) for w in f] + [math.cos(lat * w) for w in f]
    assert np.allclose(pe("grid", [[lon, lat]], frequency_num=2, min_radius=1.0, max_radius=10.0), [want], atol=1e-5)
    p = [10.0, -5.0 + 20.0 * math.sqrt(3) / 2, -5.0 - 20.0 * math.sqrt(3) / 2]  # a_j · (10, 20)
    want = [math.sin(v) for v in p] + [math.cos(v) for v in p]
    assert np.allclose(pe("theory", [[10.0, 20.0]], frequency_num=1, min_radius=1.0, max_radius=1.0), [want], atol=1e-5)


def test_nerf_values():
    assert np.allclose(pe("nerf", [[0.0, 0.0]], frequency_num=1), [[0, 0, 0, -1, 1, 1]], atol=1e-6)
    x, y, z = _xyz(40.0, 30.0)
    want = [math.sin(math.pi * v) for v in (x, y, z)] + [math.sin(2 * math.pi * v) for v in (x, y, z)]
    want += [math.cos(math.pi * v) for v in (x, y, z)] + [math.cos(2 * math.pi * v) for v in (x, y, z)]
    assert np.allclose(pe("nerf", [[40.0, 30.0]], frequency_num=2), [want], atol=1e-5)


SPHERE_KW = {"frequency_num": 2, "min_radius": 1 / 3, "max_radius": 1.0}  # ω = 1, 3 (odd already)


def _sphere_terms(lon, lat):
    lam, phi = math.radians(lon), math.radians(lat)
    w = [1.0, 3.0]
    return lam, phi, w


def test_sphere_family_values():
    lon, lat = 20.0, 10.0
    lam, phi, w = _sphere_terms(lon, lat)
    S, C = math.sin, math.cos
    sphere_c = [S(k * phi) for k in w] + [C(k * phi) * C(k * lam) for k in w] + [C(k * phi) * S(k * lam) for k in w]
    assert np.allclose(pe("sphereC", [[lon, lat]], **SPHERE_KW), [sphere_c], atol=1e-5)
    sphere_cp = (
        [S(k * phi) for k in w] + [C(k * phi) for k in w] + [S(k * lam) for k in w] + [C(k * lam) for k in w]
        + [C(k * phi) * C(k * lam) for k in w] + [C(k * phi) * S(k * lam) for k in w]
    )  # fmt: skip
    assert np.allclose(pe("sphereC+", [[lon, lat]], **SPHERE_KW), [sphere_cp], atol=1e-5)
    sphere_m = (
        [S(k * phi) for k in w] + [C(k * phi) * C(lam) for k in w] + [C(phi) * C(k * lam) for k in w]
        + [C(k * phi) * S(lam) for k in w] + [C(phi) * S(k * lam) for k in w]
    )  # fmt: skip
    assert np.allclose(pe("sphereM", [[lon, lat]], **SPHERE_KW), [sphere_m], atol=1e-5)
    sphere_mp = (
        [S(k * phi) for k in w] + [C(k * phi) for k in w] + [S(k * lam) for k in w] + [C(k * lam) for k in w]
        + [C(k * phi) * C(lam) for k in w] + [C(phi) * C(k * lam) for k in w]
        + [C(k * phi) * S(lam) for k in w] + [C(phi) * S(k * lam) for k in w]
    )  # fmt: skip
    assert np.allclose(pe("sphereM+", [[lon, lat]], **SPHERE_KW), [sphere_mp], atol=1e-5)
    # sphereC at the single scale ω = 1 is xyz, reordered (z, x, y)
    x, y, z = _xyz(lon, lat)
    assert np.allclose(pe("sphereC", [[lon, lat]], frequency_num=1, min_radius=1.0, max_radius=1.0), [[z, x, y]], atol=1e-6)


def test_dfs_values():
    lon, lat = -50.0, 35.0
    lam, phi, w = _sphere_terms(lon, lat)
    S, C = math.sin, math.cos
    want = [S(k * phi) for k in w] + [C(k * phi) for k in w] + [S(k * lam) for k in w] + [C(k * lam) for k in w]
    for fp in (C, S):
        for fl in (C, S):
            want += [fp(a * phi) * fl(b * lam) for a in w for b in w]
    assert np.allclose(pe("dfs", [[lon, lat]], **SPHERE_KW), [want], atol=1e-5)
    assert enc("dfs").pos_dim == 4 * 16 + 4 * 16 * 16


def test_rbf_and_rff_values():
    got = pe("rbf", [[0.0, 0.0], [5.0, 0.0]], anchors=[[0.0, 0.0], [10.0, 0.0]], kernel_size=10.0)
    assert np.allclose(got, [[1.0, math.exp(-0.5)], [math.exp(-0.125), math.exp(-0.125)]], atol=1e-6)
    m = enc("rff", num_features=8, sigma=0.5, seed=3)
    p = np.array(_xyz(12.0, -40.0))
    want = math.sqrt(2 / 8) * np.cos(m.weight.double().numpy() @ p + m.bias.double().numpy())
    assert np.allclose(m.encode_position([[12.0, -40.0]]).double().numpy()[0], want, atol=1e-5)
    # the kernel the features approximate: ⟨z(p), z(q)⟩ ≈ exp(−‖p − q‖² / 2σ²)
    big = enc("rff", num_features=20000, sigma=0.5, seed=0)
    a, b = big.encode_position([[0.0, 0.0], [20.0, 10.0]]).double()
    chord2 = float(np.sum((np.array(_xyz(0, 0)) - np.array(_xyz(20, 10))) ** 2))
    assert abs(float(a @ b) - math.exp(-chord2 / (2 * 0.25))) < 0.03


def test_spherical_harmonics_closed_forms():
    lon, lat = 37.0, -21.0
    x, y, z = _xyz(lon, lat)
    got = pe("spherical_harmonics", [[lon, lat]], legendre_polys=3)[0]
    c1, c2 = math.sqrt(3 / (4 * math.pi)), math.sqrt(15 / (4 * math.pi))
    want = [
        0.5 / math.sqrt(math.pi),
        c1 * y, c1 * z, c1 * x,  # l = 1: m = -1, 0, 1
        c2 * x * y, c2 * y * z, math.sqrt(5 / (16 * math.pi)) * (3 * z * z - 1), c2 * x * z, c2 / 2 * (x * x - y * y),
    ]  # fmt: skip
    assert np.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("L", [10, 25])
def test_spherical_harmonics_are_orthonormal(L):
    """Exact quadrature (Gauss–Legendre in sin(lat) × uniform in lon) of Y_i · Y_j over the sphere."""
    zs, wz = np.polynomial.legendre.leggauss(L + 1)
    lons = np.arange(2 * L + 1) * 360.0 / (2 * L + 1) - 180.0
    lat = np.degrees(np.arcsin(zs))
    grid = np.array([(lo, la) for la in lat for lo in lons])
    w = np.repeat(wz, len(lons)) * (2 * math.pi / len(lons))
    m = enc("spherical_harmonics", legendre_polys=L, head="none")
    Y = m.encode_position(torch.tensor(grid, dtype=torch.float64)).double().numpy()
    gram = (Y * w[:, None]).T @ Y
    assert np.abs(gram - np.eye(L * L)).max() < 1e-4


def test_legendre_recurrence_is_stable_at_high_degree():
    theta = torch.linspace(0, math.pi, 101, dtype=torch.float64)
    P = legendre_normalized(torch.cos(theta), torch.sin(theta), 150)
    assert torch.isfinite(P).all()
    # P̄_l^0(1) = √((2l+1)/4π)
    l = torch.arange(150, dtype=torch.float64)
    assert torch.allclose(P[0, :, 0], torch.sqrt((2 * l + 1) / (4 * math.pi)))


# --- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_gradients_are_finite(name):
    torch.manual_seed(0)
    m = create_location_encoder(name, **({"trainable": True, "head": "mlp"} if name == "geoclip" else {}))
    pts = torch.tensor([[0.0, 90.0], [10.0, -90.0], [-180.0, 0.0], [180.0, 45.0], [2.35, 48.86]], requires_grad=True)
    m(pts).square().sum().backward()
    assert torch.isfinite(pts.grad).all(), pts.grad
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


# --- GeoCLIP --------------------------------------------------------------------------------------


def test_geoclip_weights_load_with_matching_keys():
    from geoseek.encoders.location.geoclip import GeoCLIPLocationNet, geoclip_weights_path

    state = torch.load(geoclip_weights_path(), map_location="cpu", weights_only=True)
    assert set(state) == set(GeoCLIPLocationNet().state_dict())
    m = enc("geoclip")
    assert torch.equal(m.net.LocEnc2.capsule[0].b, state["LocEnc2.capsule.0.b"])
    assert not any(p.requires_grad for p in m.net.parameters())


def test_geoclip_equal_earth_values():
    from geoseek.encoders.location.geoclip import A1, SCALE, equal_earth

    v = equal_earth(torch.tensor([[0.0, 0.0], [180.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(v[0], torch.zeros(2, dtype=torch.float64))
    x_edge = 2 * math.sqrt(3) * math.pi / (3 * A1) * SCALE / 180
    assert torch.allclose(v[1], torch.tensor([x_edge, 0.0], dtype=torch.float64))


def test_geoclip_similarity_ordering():
    paris, versailles, berlin, new_york, sydney = (2.3522, 48.8566), (2.1301, 48.8049), (13.405, 52.52), (-74.006, 40.7128), (151.2093, -33.8688)  # fmt: skip
    with torch.no_grad():
        e = torch.nn.functional.normalize(enc("geoclip")([paris, versailles, berlin, new_york, sydney]), dim=1)
    s = (e[0] @ e[1:].T).tolist()
    assert s[0] > s[1] > s[2] > s[3], s


def test_fine_scales_are_computed_precisely():
    """ω up to 10⁵ (wavelength ≈ 400 m): angles are reduced modulo 2π in float64 before float32 trig."""
    m = enc("sphereM", frequency_num=24, min_radius=1e-5, head="none")
    pts = np.array([[2.3522, 48.8566], [-122.4194, 37.7749], [151.2093, -33.8688]])
    w = m.freqs.double().numpy()
    lam, phi = np.radians(pts[:, 0])[:, None], np.radians(pts[:, 1])[:, None]
    got = m.encode_position(pts).double().numpy()
    assert np.abs(got[:, :24] - np.sin(w * phi)).max() < 1e-5
    assert np.abs(got[:, 48:72] - np.cos(phi) * np.cos(w * lam)).max() < 1e-5


def test_encode_position_into_a_reused_buffer():
    m = enc("sphereM")
    x = torch.rand(5000, 2) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
    buf = torch.full((5000, m.pos_dim), float("nan"))
    got = m.encode_position(x, out=buf)
    assert got.data_ptr() == buf.data_ptr() and torch.allclose(buf, m._encode(x), atol=1e-6)
    with pytest.raises(InvalidInputError, match="out must be"):
        m.encode_position(x, out=torch.empty(5000, 3))
