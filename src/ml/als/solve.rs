//! Small dense linear algebra for ALS: dot/axpy kernels, a Cholesky solver
//! for the explicit normal equations and a conjugate-gradient loop for the
//! implicit ones.
//!
//! Owns: numerics on caller-provided slices only. It does not know about
//! users, items or ratings (that is `model.rs`) and never allocates, so the
//! training hot loop can call it once per user without touching the heap.
//!
//! The implicit solver's hot loop runs through [`Kernels`]: [`Portable`] is
//! plain Rust the compiler vectorises for the build's baseline (SSE2 on
//! x86-64), [`Wide`] uses the widest instructions the CPU has (AVX2 with FMA
//! on most x86-64 machines), chosen at run time by `pulp`, in safe Rust.
//!
//! Invariant: every reduction here runs in a fixed order that depends only on
//! the slice length and the instruction set, never on threads or timing, so
//! the same inputs on the same machine give bit-identical outputs. Matrices are
//! dense, row-major, `n * n`.

use pulp::Simd;

/// Lanes used by the f32 kernels. Eight independent accumulators let LLVM keep
/// two SSE (or one AVX) registers busy without needing `-ffast-math` style
/// reassociation, and they fix the summation order, which keeps results
/// deterministic.
const LANES: usize = 8;

/// `a · b` in f32 with a fixed 8-lane summation order.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ac, ar) = a.as_chunks::<LANES>();
    let (bc, br) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    // Pairwise fold of the lanes: fixed order, a little more accurate.
    let s4 = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (s4[0] + s4[2]) + (s4[1] + s4[3]) + tail
}

/// `[y0·p, y1·p, y2·p, y3·p]`, each exactly [`dot`]. Four separate dots, not one loop over the
/// four rows: LLVM vectorised that loop across the rows with a shuffle per step, and the implicit
/// solver, whose hot loop this is, trained 12% slower at 25M ratings with it (the four chains
/// still overlap in the CPU; `p` stays in L1).
#[inline]
pub fn dot4(ys: [&[f32]; 4], p: &[f32]) -> [f32; 4] {
    ys.map(|y| dot(y, p))
}

/// `out += Σ_k c[k] * ys[k]`: four axpys with one load/store of `out`.
#[inline]
pub fn axpy4(c: [f32; 4], ys: [&[f32]; 4], out: &mut [f32]) {
    let n = out.len();
    let [y0, y1, y2, y3] = ys.map(|y| &y[..n]);
    for t in 0..n {
        out[t] += (c[0] * y0[t] + c[1] * y1[t]) + (c[2] * y2[t] + c[3] * y3[t]);
    }
}

/// The f32 vector kernels of the implicit solver's hot loop, so one loop body
/// serves both the portable build and each instruction set pulp dispatches to.
pub trait Kernels: Copy {
    /// `a · b`.
    fn dot(self, a: &[f32], b: &[f32]) -> f32;
    /// `y += a * x`.
    fn axpy(self, a: f32, x: &[f32], y: &mut [f32]);
    /// `out += Σ_k c[k] * ys[k]`.
    fn axpy4(self, c: [f32; 4], ys: [&[f32]; 4], out: &mut [f32]);

    /// `[y0·p, y1·p, y2·p, y3·p]`.
    #[inline(always)]
    fn dot4(self, ys: [&[f32]; 4], p: &[f32]) -> [f32; 4] {
        ys.map(|y| self.dot(y, p))
    }

    /// `out = m * v` for a dense row-major `out.len() x v.len()` matrix.
    #[inline(always)]
    fn matvec(self, m: &[f32], v: &[f32], out: &mut [f32]) {
        let n = v.len();
        assert_eq!(m.len(), n * out.len(), "matvec: shape mismatch");
        for (o, row) in out.iter_mut().zip(m.chunks_exact(n)) {
            *o = self.dot(row, v);
        }
    }
}

/// The kernels above as plain Rust (the build's baseline instruction set).
#[derive(Debug, Clone, Copy)]
pub struct Portable;

impl Kernels for Portable {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        dot(a, b)
    }

    #[inline(always)]
    fn axpy(self, a: f32, x: &[f32], y: &mut [f32]) {
        axpy(a, x, y)
    }

    #[inline(always)]
    fn axpy4(self, c: [f32; 4], ys: [&[f32]; 4], out: &mut [f32]) {
        axpy4(c, ys, out)
    }

    #[inline(always)]
    fn matvec(self, m: &[f32], v: &[f32], out: &mut [f32]) {
        matvec_rect(m, v, out)
    }
}

/// The kernels in the SIMD registers `S` (fused multiply-adds where the CPU
/// has them). Only fast inside a `pulp::Arch::dispatch`, where `S` is known.
#[derive(Debug, Clone, Copy)]
pub struct Wide<S>(pub S);

impl<S: Simd> Kernels for Wide<S> {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        if S::IS_SCALAR {
            return dot(a, b);
        }
        let simd = self.0;
        let n = a.len().min(b.len());
        let (a_head, a_tail) = S::as_simd_f32s(&a[..n]);
        let (b_head, b_tail) = S::as_simd_f32s(&b[..n]);
        // Two accumulators hide the latency of the fused multiply-add.
        let (a2, a1) = a_head.as_chunks::<2>();
        let (b2, b1) = b_head.as_chunks::<2>();
        let mut acc0 = simd.splat_f32s(0.0);
        let mut acc1 = simd.splat_f32s(0.0);
        for (x, y) in a2.iter().zip(b2) {
            acc0 = simd.mul_add_e_f32s(x[0], y[0], acc0);
            acc1 = simd.mul_add_e_f32s(x[1], y[1], acc1);
        }
        for (x, y) in a1.iter().zip(b1) {
            acc0 = simd.mul_add_e_f32s(*x, *y, acc0);
        }
        let mut sum = simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1));
        for (x, y) in a_tail.iter().zip(b_tail) {
            sum += x * y;
        }
        sum
    }

    #[inline(always)]
    fn axpy(self, a: f32, x: &[f32], y: &mut [f32]) {
        if S::IS_SCALAR {
            return axpy(a, x, y);
        }
        let simd = self.0;
        let n = y.len();
        let (x_head, x_tail) = S::as_simd_f32s(&x[..n]);
        let (y_head, y_tail) = S::as_mut_simd_f32s(y);
        let a_wide = simd.splat_f32s(a);
        for (yi, xi) in y_head.iter_mut().zip(x_head) {
            *yi = simd.mul_add_e_f32s(a_wide, *xi, *yi);
        }
        for (yi, xi) in y_tail.iter_mut().zip(x_tail) {
            *yi += a * xi;
        }
    }

    #[inline(always)]
    fn axpy4(self, c: [f32; 4], ys: [&[f32]; 4], out: &mut [f32]) {
        if S::IS_SCALAR {
            return axpy4(c, ys, out);
        }
        let simd = self.0;
        let n = out.len();
        let ys = ys.map(|y| &y[..n]);
        let [h0, h1, h2, h3] = ys.map(|y| S::as_simd_f32s(y).0);
        let [c0, c1, c2, c3] = c.map(|c| simd.splat_f32s(c));
        let (out_head, out_tail) = S::as_mut_simd_f32s(out);
        let wide_len = n - out_tail.len();
        for (i, o) in out_head.iter_mut().enumerate() {
            let pair01 = simd.mul_add_e_f32s(c1, h1[i], simd.mul_f32s(c0, h0[i]));
            let pair23 = simd.mul_add_e_f32s(c3, h3[i], simd.mul_f32s(c2, h2[i]));
            *o = simd.add_f32s(*o, simd.add_f32s(pair01, pair23));
        }
        for (t, o) in out_tail.iter_mut().enumerate() {
            let i = wide_len + t;
            *o += (c[0] * ys[0][i] + c[1] * ys[1][i]) + (c[2] * ys[2][i] + c[3] * ys[3][i]);
        }
    }
}

/// `a · b` in f64 with a fixed 4-lane summation order (two SSE2 registers).
#[inline]
pub fn dot64(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (ac, ar) = a[..n].as_chunks::<4>();
    let (bc, br) = b[..n].as_chunks::<4>();
    let mut acc = [0.0f64; 4];
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f64;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// `[y0·p, y1·p, y2·p, y3·p]` in f64, each summed exactly like [`dot64`].
#[inline]
pub fn dot64x4(ys: [&[f64]; 4], p: &[f64]) -> [f64; 4] {
    let n = p.len();
    let [y0, y1, y2, y3] = ys.map(|y| &y[..n]);
    let (pc, pr) = p.as_chunks::<4>();
    let (c0, c1, c2, c3) = (
        y0.as_chunks::<4>().0,
        y1.as_chunks::<4>().0,
        y2.as_chunks::<4>().0,
        y3.as_chunks::<4>().0,
    );
    let (mut a0, mut a1, mut a2, mut a3) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
    for c in 0..pc.len() {
        let pv = &pc[c];
        let (v0, v1, v2, v3) = (&c0[c], &c1[c], &c2[c], &c3[c]);
        for l in 0..4 {
            a0[l] += v0[l] * pv[l];
            a1[l] += v1[l] * pv[l];
            a2[l] += v2[l] * pv[l];
            a3[l] += v3[l] * pv[l];
        }
    }
    let base = pc.len() * 4;
    let fold = |a: &[f64; 4], y: &[f64]| {
        let mut tail = 0.0f64;
        for (k, pv) in pr.iter().enumerate() {
            tail += y[base + k] * pv;
        }
        (a[0] + a[2]) + (a[1] + a[3]) + tail
    };
    [fold(&a0, y0), fold(&a1, y1), fold(&a2, y2), fold(&a3, y3)]
}

/// `y += a * x` in f32.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `out = m * v` for a dense row-major `n x n` matrix (n = `v.len()`).
#[inline]
pub fn matvec(m: &[f32], v: &[f32], out: &mut [f32]) {
    debug_assert_eq!(m.len(), v.len() * v.len());
    matvec_rect(m, v, out);
}

/// `out = m * v` for a dense row-major `out.len() x v.len()` matrix.
#[inline]
pub fn matvec_rect(m: &[f32], v: &[f32], out: &mut [f32]) {
    let n = v.len();
    assert_eq!(m.len(), n * out.len(), "matvec: shape mismatch");
    // Four rows per pass share each load of `v`.
    let (o4, ot) = out.as_chunks_mut::<4>();
    let mut rows = m.chunks_exact(n);
    for o in o4 {
        let r: [&[f32]; 4] = std::array::from_fn(|_| rows.next().unwrap_or(&[]));
        *o = dot4(r, v);
    }
    for (o, row) in ot.iter_mut().zip(rows) {
        *o = dot(row, v);
    }
}

/// Error from [`cholesky_in_place`]: the matrix is not (numerically)
/// symmetric positive definite; `pivot` is the failing column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPositiveDefinite {
    pub pivot: usize,
}

/// Smallest accepted pivot relative to its original diagonal entry: about a
/// million times f64's rounding error on a sum of a few hundred terms.
const PIVOT_TOLERANCE: f64 = 1e-10;

/// Factor the symmetric positive definite `n x n` matrix `a` (row-major; only
/// the lower triangle is read) into `L` with `a = L Lᵀ`, written to the lower
/// triangle of `a`. The strict upper triangle is left as it was.
///
/// f64 because the explicit systems are tiny (rank + 1) and ALS-WR's
/// regularisation can be small next to the Gram terms; f32 pivots lose too
/// many digits there for the "objective never increases" guarantee.
pub fn cholesky_in_place(a: &mut [f64], n: usize) -> Result<(), NotPositiveDefinite> {
    assert_eq!(a.len(), n * n, "cholesky: matrix is not n x n");
    for j in 0..n {
        let diag = a[j * n + j];
        let mut d = diag;
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        // A pivot that is only rounding noise left after cancellation means
        // the matrix is singular in all but name (e.g. lambda = 0 and fewer
        // ratings than factors); solving anyway returns huge garbage, so
        // treat it as not positive definite. NaN fails `is_finite`.
        if !d.is_finite() || d <= 0.0 || d <= PIVOT_TOLERANCE * diag {
            return Err(NotPositiveDefinite { pivot: j });
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in (j + 1)..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    Ok(())
}

/// Solve `L Lᵀ x = b` in place (`b` becomes `x`), `l` from [`cholesky_in_place`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    assert_eq!(l.len(), n * n);
    assert_eq!(b.len(), n);
    // Forward: L y = b.
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    // Backward: Lᵀ x = y.
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in (i + 1)..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Solve the SPD system `a x = b` in place: `a` is overwritten by its
/// factor, `b` by the solution. On failure `b` is unspecified.
pub fn solve_spd(a: &mut [f64], n: usize, b: &mut [f64]) -> Result<(), NotPositiveDefinite> {
    cholesky_in_place(a, n)?;
    cholesky_solve(a, n, b);
    Ok(())
}

/// Residual norm² below which CG stops: the same cut-off the `implicit`
/// library uses, so a converged row is not perturbed by 0/0 steps.
pub const CG_TOLERANCE: f32 = 1e-20;

/// Scratch vectors for [`conjugate_gradient`], allocated once per worker
/// chunk so the per-row solve never allocates.
#[derive(Debug, Clone)]
pub struct CgScratch {
    pub r: Vec<f32>,
    pub p: Vec<f32>,
    pub ap: Vec<f32>,
}

impl CgScratch {
    pub fn new(n: usize) -> Self {
        Self {
            r: vec![0.0; n],
            p: vec![0.0; n],
            ap: vec![0.0; n],
        }
    }
}

/// At most `steps` conjugate-gradient iterations on `A x = b` for SPD `A`,
/// warm-started from `x`. The caller has already written the initial
/// residual `b - A x` into `scratch.r` (for implicit ALS it is cheaper to
/// fuse that with the sparse part of `A` than to form `b` separately);
/// `apply(v, out)` must write `A v` into `out`.
///
/// Returns the number of steps taken. Stops early when ‖r‖² < [`CG_TOLERANCE`]
/// or when `pᵀAp` is not positive (only possible through rounding once
/// converged), which keeps `x` finite.
pub fn conjugate_gradient<F>(
    x: &mut [f32],
    scratch: &mut CgScratch,
    steps: usize,
    apply: F,
) -> usize
where
    F: FnMut(&[f32], &mut [f32]),
{
    conjugate_gradient_with(Portable, x, scratch, steps, apply)
}

/// [`conjugate_gradient`] with the vector kernels `k`. Always inlined, so that
/// inside a [`Wide`] dispatch the whole loop, `apply` included, is compiled
/// for the dispatched instruction set.
#[inline(always)]
pub fn conjugate_gradient_with<K, F>(
    k: K,
    x: &mut [f32],
    scratch: &mut CgScratch,
    steps: usize,
    mut apply: F,
) -> usize
where
    K: Kernels,
    F: FnMut(&[f32], &mut [f32]),
{
    let CgScratch { r, p, ap } = scratch;
    p.copy_from_slice(r);
    let mut rs_old = k.dot(r, r);
    if rs_old < CG_TOLERANCE {
        return 0;
    }
    for step in 0..steps {
        apply(p, ap);
        let pap = k.dot(p, ap);
        if pap.is_nan() || pap <= 0.0 {
            return step;
        }
        let a = rs_old / pap;
        k.axpy(a, p, x);
        k.axpy(-a, ap, r);
        let rs_new = k.dot(r, r);
        if rs_new < CG_TOLERANCE {
            return step + 1;
        }
        let beta = rs_new / rs_old;
        for (pi, ri) in p.iter_mut().zip(r.iter()) {
            *pi = ri + beta * *pi;
        }
        rs_old = rs_new;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A random SPD matrix `M Mᵀ + shift I` (row-major f64) from a flat seed vector.
    fn spd_from(n: usize, entries: &[f64], shift: f64) -> Vec<f64> {
        let m = &entries[..n * n];
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for k in 0..n {
                    s += m[i * n + k] * m[j * n + k];
                }
                a[i * n + j] = s + if i == j { shift } else { 0.0 };
            }
        }
        a
    }

    fn residual_norm(a: &[f64], n: usize, x: &[f64], b: &[f64]) -> f64 {
        let mut worst: f64 = 0.0;
        for i in 0..n {
            let mut s = -b[i];
            for j in 0..n {
                s += a[i * n + j] * x[j];
            }
            worst = worst.max(s.abs());
        }
        worst
    }

    #[test]
    fn dot_matches_naive_for_all_tail_lengths() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-5, "n = {n}");
        }
    }

    /// The dispatched SIMD kernels (AVX2/FMA on this machine) agree with the portable ones to
    /// rounding, for every tail length around the vector width.
    #[test]
    fn wide_kernels_match_portable_ones() {
        struct Compare(usize);
        impl pulp::WithSimd for Compare {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let (wide, portable, n) = (Wide(simd), Portable, self.0);
                let ys: Vec<Vec<f32>> = (0..4)
                    .map(|k| {
                        (0..n)
                            .map(|i| ((i * 7 + k * 3) as f32 * 0.13).sin())
                            .collect()
                    })
                    .collect();
                let p: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).cos()).collect();
                let refs = [&ys[0][..], &ys[1][..], &ys[2][..], &ys[3][..]];
                let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
                let (dw, dp) = (wide.dot4(refs, &p), portable.dot4(refs, &p));
                for k in 0..4 {
                    assert!(close(dw[k], dp[k]), "dot n = {n}: {} vs {}", dw[k], dp[k]);
                }
                let c = [0.5f32, -1.0, 2.0, 0.25];
                let (mut a, mut b) = (p.clone(), p.clone());
                wide.axpy4(c, refs, &mut a);
                portable.axpy4(c, refs, &mut b);
                wide.axpy(-0.75, &ys[1], &mut a);
                portable.axpy(-0.75, &ys[1], &mut b);
                for (x, y) in a.iter().zip(&b) {
                    assert!(close(*x, *y), "axpy n = {n}: {x} vs {y}");
                }
                if n == 0 {
                    return; // a model has at least one factor
                }
                let m: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.011).sin()).collect();
                let (mut ow, mut op) = (vec![0.0; n], vec![0.0; n]);
                wide.matvec(&m, &p, &mut ow);
                portable.matvec(&m, &p, &mut op);
                for (x, y) in ow.iter().zip(&op) {
                    assert!(close(*x, *y), "matvec n = {n}: {x} vs {y}");
                }
            }
        }
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 31, 64, 65] {
            pulp::Arch::new().dispatch(Compare(n));
        }
    }

    #[test]
    fn dot4_and_axpy4_match_single_kernels() {
        for n in [0usize, 3, 8, 13, 64] {
            let ys: Vec<Vec<f32>> = (0..4)
                .map(|k| {
                    (0..n)
                        .map(|i| ((i * 5 + k * 3) as f32 * 0.21).sin())
                        .collect()
                })
                .collect();
            let p: Vec<f32> = (0..n).map(|i| (i as f32 * 0.4).cos()).collect();
            let refs = [&ys[0][..], &ys[1][..], &ys[2][..], &ys[3][..]];
            let d = dot4(refs, &p);
            for k in 0..4 {
                assert_eq!(d[k], dot(&ys[k], &p), "n = {n}, k = {k}");
            }
            let ys64: Vec<Vec<f64>> = ys
                .iter()
                .map(|y| y.iter().map(|v| *v as f64).collect())
                .collect();
            let p64: Vec<f64> = p.iter().map(|v| *v as f64).collect();
            let d64 = dot64x4([&ys64[0], &ys64[1], &ys64[2], &ys64[3]], &p64);
            for k in 0..4 {
                assert_eq!(d64[k], dot64(&ys64[k], &p64), "n = {n}, k = {k}");
            }
            let mut a = p.clone();
            let mut b = p.clone();
            axpy4([0.5, -1.0, 2.0, 0.25], refs, &mut a);
            for (k, c) in [0.5f32, -1.0, 2.0, 0.25].iter().enumerate() {
                axpy(*c, &ys[k], &mut b);
            }
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn cholesky_known_system() {
        // [[4, 2], [2, 3]] x = [2, 1]  ->  x = [0.5, 0]
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        solve_spd(&mut a, 2, &mut b).unwrap();
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12, "{b:?}");
    }

    #[test]
    fn cholesky_rejects_indefinite_and_nan() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(
            cholesky_in_place(&mut a, 2),
            Err(NotPositiveDefinite { pivot: 1 })
        );
        let mut a = vec![f64::NAN];
        assert!(cholesky_in_place(&mut a, 1).is_err());
        let mut a = vec![0.0];
        assert!(cholesky_in_place(&mut a, 1).is_err());
        // Singular (rank 1) but rounding could leave a tiny positive pivot.
        let v = [0.1f64, 0.7, 0.3];
        let mut a: Vec<f64> = (0..9).map(|k| v[k / 3] * v[k % 3]).collect();
        assert!(cholesky_in_place(&mut a, 3).is_err());
    }

    #[test]
    fn cg_converges_in_n_steps_exact_arithmetic_sized() {
        // On an n x n well-conditioned SPD system, n CG steps from zero solve it.
        let n = 6;
        let entries: Vec<f64> = (0..n * n)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let a64 = spd_from(n, &entries, 1.0);
        let a: Vec<f32> = a64.iter().map(|v| *v as f32).collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 - 2.0).collect();
        let mut x = vec![0.0f32; n];
        let mut s = CgScratch::new(n);
        s.r.copy_from_slice(&b);
        conjugate_gradient(&mut x, &mut s, 3 * n, |v, out| matvec(&a, v, out));
        let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
        let b64: Vec<f64> = b.iter().map(|v| *v as f64).collect();
        assert!(residual_norm(&a64, n, &x64, &b64) < 1e-3);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn cholesky_residual_small(
            n in 1usize..12,
            entries in proptest::collection::vec(-1.0f64..1.0, 144),
            rhs in proptest::collection::vec(-10.0f64..10.0, 12),
            shift in 0.01f64..2.0,
        ) {
            let a = spd_from(n, &entries, shift);
            let mut f = a.clone();
            let mut x = rhs[..n].to_vec();
            solve_spd(&mut f, n, &mut x).unwrap();
            let scale = 1.0 + rhs[..n].iter().fold(0.0f64, |m, v| m.max(v.abs()));
            // Conditioning is bounded by (‖M‖² + shift) / shift <= (n + 2) / 0.01.
            prop_assert!(residual_norm(&a, n, &x, &rhs[..n]) < 1e-9 * scale,
                "residual too large");
        }

        #[test]
        fn cg_residual_small(
            n in 1usize..10,
            entries in proptest::collection::vec(-1.0f64..1.0, 100),
            rhs in proptest::collection::vec(-10.0f32..10.0, 10),
            warm in proptest::collection::vec(-1.0f32..1.0, 10),
        ) {
            // Shift 1 keeps the condition number <= n + 1, so 4n f32 CG steps
            // reach a relative residual well under 1e-3.
            let a64 = spd_from(n, &entries, 1.0);
            let a: Vec<f32> = a64.iter().map(|v| *v as f32).collect();
            let b = &rhs[..n];
            let mut x = warm[..n].to_vec();
            let mut s = CgScratch::new(n);
            let mut ax = vec![0.0f32; n];
            matvec(&a, &x, &mut ax);
            for i in 0..n {
                s.r[i] = b[i] - ax[i];
            }
            conjugate_gradient(&mut x, &mut s, 4 * n, |v, out| matvec(&a, v, out));
            let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
            let b64: Vec<f64> = b.iter().map(|v| *v as f64).collect();
            let bnorm = 1.0 + b64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            prop_assert!(residual_norm(&a64, n, &x64, &b64) < 1e-3 * bnorm);
        }
    }
}
