/**
 * Colour-vision arithmetic used to choose and to check a challenge palette. Not needed at run time: the device
 * and the console only need `palette.ts`; this file is what the tests use to prove the palettes' claims.
 *
 * - sRGB (IEC 61966-2-1): 8-bit channels are decoded to linear light with the sRGB transfer function; linear
 *   RGB → CIE XYZ with the sRGB/D65 matrix; XYZ → CIELAB relative to the matrix's own white (so 255,255,255 is
 *   exactly L* 100, a* 0, b* 0).
 * - Colour-vision deficiency: Machado, Oliveira & Fernandes (2009), "A Physiologically-based Model for Simulation
 *   of Color Vision Deficiency", IEEE TVCG 15(6), the published matrices for protanomaly, deuteranomaly and
 *   tritanomaly at severity 1.0 (i.e. dichromacy), applied to linear RGB and clipped to [0, 1].
 * - Colour difference: CIEDE2000 (CIE 142-2001; implementation after Sharma, Wu & Dalal 2005, checked against
 *   their published test pairs) with kL = kC = kH = 1, and CIE76 (Euclidean distance in CIELAB).
 */

export type Vision = 'normal' | 'protan' | 'deutan' | 'tritan';
export type Rgb8 = readonly [number, number, number];
export type Lab = readonly [number, number, number];
type Matrix3 = readonly [Rgb8, Rgb8, Rgb8];

export const VISIONS: readonly Vision[] = ['normal', 'protan', 'deutan', 'tritan'];

/** Machado et al. 2009, severity 1.0, rows produce linear R, G, B. */
export const MACHADO_2009: Readonly<Record<'protan' | 'deutan' | 'tritan', Matrix3>> = {
  protan: [
    [0.152286, 1.052583, -0.204868],
    [0.114503, 0.786281, 0.099216],
    [-0.003882, -0.048116, 1.051998],
  ],
  deutan: [
    [0.367322, 0.860646, -0.227968],
    [0.280085, 0.672501, 0.047413],
    [-0.01182, 0.04294, 0.968881],
  ],
  tritan: [
    [1.255528, -0.076749, -0.178779],
    [-0.078411, 0.930809, 0.147602],
    [0.004733, 0.691367, 0.3039],
  ],
};

/** Linear sRGB → XYZ (D65). */
const SRGB_TO_XYZ: Matrix3 = [
  [0.4124564, 0.3575761, 0.1804375],
  [0.2126729, 0.7151522, 0.072175],
  [0.0193339, 0.119192, 0.9503041],
];

function mul(m: Matrix3, v: Rgb8): [number, number, number] {
  return [
    m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
    m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
    m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
  ];
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** sRGB 8-bit channel → linear light in [0, 1]. */
export function srgbToLinear(c8: number): number {
  const c = c8 / 255;
  return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}

/** Linear RGB in [0, 1] as seen with `vision` (Machado 2009 at severity 1.0), clipped to [0, 1]. */
export function simulateLinear(rgb: Rgb8, vision: Vision): [number, number, number] {
  const lin: Rgb8 = [srgbToLinear(rgb[0]), srgbToLinear(rgb[1]), srgbToLinear(rgb[2])];
  if (vision === 'normal') return [lin[0], lin[1], lin[2]];
  const s = mul(MACHADO_2009[vision], lin);
  return [clamp01(s[0]), clamp01(s[1]), clamp01(s[2])];
}

const WHITE = mul(SRGB_TO_XYZ, [1, 1, 1]);
const EPS = (6 / 29) ** 3;

function labF(t: number): number {
  return t > EPS ? Math.cbrt(t) : t / (3 * (6 / 29) ** 2) + 4 / 29;
}

/** Linear RGB in [0, 1] → CIELAB (D65). */
export function linearToLab(lin: Rgb8): Lab {
  const xyz = mul(SRGB_TO_XYZ, lin);
  const fx = labF(xyz[0] / WHITE[0]);
  const fy = labF(xyz[1] / WHITE[1]);
  const fz = labF(xyz[2] / WHITE[2]);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** An sRGB colour's CIELAB coordinates as perceived with `vision`. */
export function labAs(rgb: Rgb8, vision: Vision): Lab {
  return linearToLab(simulateLinear(rgb, vision));
}

/** CIE76 ΔE*ab. */
export function deltaE76(a: Lab, b: Lab): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

const DEG = Math.PI / 180;
const POW25_7 = 6103515625; // 25^7

function hueDeg(b: number, a: number): number {
  if (a === 0 && b === 0) return 0;
  const h = Math.atan2(b, a) / DEG;
  return h < 0 ? h + 360 : h;
}

/** CIEDE2000 ΔE00 with kL = kC = kH = 1. */
export function deltaE2000(x: Lab, y: Lab): number {
  const [L1, a1, b1] = x;
  const [L2, a2, b2] = y;
  const cBar = (Math.hypot(a1, b1) + Math.hypot(a2, b2)) / 2;
  const cBar7 = cBar ** 7;
  const g = 0.5 * (1 - Math.sqrt(cBar7 / (cBar7 + POW25_7)));
  const a1p = (1 + g) * a1;
  const a2p = (1 + g) * a2;
  const c1p = Math.hypot(a1p, b1);
  const c2p = Math.hypot(a2p, b2);
  const h1p = hueDeg(b1, a1p);
  const h2p = hueDeg(b2, a2p);
  const dLp = L2 - L1;
  const dCp = c2p - c1p;
  let dhp = 0;
  if (c1p * c2p !== 0) {
    dhp = h2p - h1p;
    if (dhp > 180) dhp -= 360;
    else if (dhp < -180) dhp += 360;
  }
  const dHp = 2 * Math.sqrt(c1p * c2p) * Math.sin((dhp / 2) * DEG);
  const lBarP = (L1 + L2) / 2;
  const cBarP = (c1p + c2p) / 2;
  let hBarP = h1p + h2p;
  if (c1p * c2p !== 0) {
    if (Math.abs(h1p - h2p) <= 180) hBarP /= 2;
    else hBarP = hBarP < 360 ? (hBarP + 360) / 2 : (hBarP - 360) / 2;
  }
  const t =
    1 -
    0.17 * Math.cos((hBarP - 30) * DEG) +
    0.24 * Math.cos(2 * hBarP * DEG) +
    0.32 * Math.cos((3 * hBarP + 6) * DEG) -
    0.2 * Math.cos((4 * hBarP - 63) * DEG);
  const dTheta = 30 * Math.exp(-(((hBarP - 275) / 25) ** 2));
  const cBarP7 = cBarP ** 7;
  const rc = 2 * Math.sqrt(cBarP7 / (cBarP7 + POW25_7));
  const l50 = (lBarP - 50) ** 2;
  const sl = 1 + (0.015 * l50) / Math.sqrt(20 + l50);
  const sc = 1 + 0.045 * cBarP;
  const sh = 1 + 0.015 * cBarP * t;
  const rt = -Math.sin(2 * dTheta * DEG) * rc;
  const l = dLp / sl;
  const c = dCp / sc;
  const h = dHp / sh;
  return Math.sqrt(l * l + c * c + h * h + rt * c * h);
}

export type DeltaE = 'ciede2000' | 'cie76';

/** The smallest colour difference between any two of `colours` as perceived with `vision`. */
export function minPairwiseDeltaE(colours: readonly Rgb8[], vision: Vision, metric: DeltaE = 'ciede2000'): number {
  const labs = colours.map((c) => labAs(c, vision));
  const de = metric === 'ciede2000' ? deltaE2000 : deltaE76;
  let min = Infinity;
  for (let i = 0; i < labs.length; i++) {
    for (let j = i + 1; j < labs.length; j++) min = Math.min(min, de(labs[i], labs[j]));
  }
  return min;
}
