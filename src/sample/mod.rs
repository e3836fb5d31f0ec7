//! Synthetic MovieLens-1M-format sample data: `ratings.dat`, `movies.dat` and `users.dat`; and
//! in [`adtech`], daily ad-tech logs for `examples/adtech/` (`strata sample --kind adtech`), from
//! the same deterministic random streams.
//!
//! # What this module owns
//! - [`SampleSpec`]: the shape of a sample (users, items, ratings, seed), its ML-shaped defaults
//!   ([`SampleSpec::for_ratings`]) and its feasibility check ([`SampleSpec::validate`]).
//! - [`write_sample`] / [`write_sample_to`]: the generator. Files use the exact MovieLens-1M
//!   conventions (`::` separators, 1-based ids, latin-1 bytes, `\n` line ends), so a real ML-1M
//!   download and a sample are interchangeable for everything downstream.
//! - The generative model, which is what makes the sample useful for recommenders:
//!   - every movie has a latent vector (rank [`RANK`]), a quality bias weakly tied to its
//!     popularity, a Zipf-like popularity, a year and 1-3 genres that follow its latent vector;
//!   - every user has a latent vector (nudged by gender and age), a rating bias (harsh or
//!     generous) and a heavy-tailed activity (at least 20 ratings when the total allows);
//!   - *which* movies a user rates is drawn without replacement from popularity tilted by taste
//!     (`pop(i) * exp(TILT * min(z, TAU))`, `z` the standardised dot product), so the observed
//!     items themselves are predictable from factors, not only the rating values;
//!   - the rating is the latent score `3.58 + b_user + b_item + p_u . q_i + noise` cut into
//!     1..=5 at cut points calibrated on a pilot of 1,000-2,000 users of the very sample, so every
//!     shape gets ML-1M's left-skewed histogram (5.6 / 10.8 / 26.1 / 34.9 / 22.6 %), which
//!     plain rounding of a bell curve cannot give.
//!
//! # What it does not own
//! Downloading real MovieLens, parsing `.dat` files, ingesting them into tables, splitting
//! train/test, or any recommender. It never reads anything; it only writes the three files.
//!
//! # Invariant: same spec => same bytes
//! The same [`SampleSpec`] produces byte-identical files on every run, platform and toolchain,
//! now and after dependency upgrades. Therefore:
//! - the PRNG (SplitMix64 seeding xoshiro256**, polar Box-Muller normals) is implemented here,
//!   not taken from `rand`, whose streams and distributions change between versions;
//! - `ln`/`exp` are implemented here with `+ - * /` only, because `f64::ln`/`exp` call the
//!   platform libm, whose last-bit results differ between glibc, musl, macOS and Windows, and a
//!   last bit is enough to flip a rating or a chosen movie. No `powf`, `powi`, `sin`, `mul_add`;
//! - every user and every movie draws from its own stream (seed, purpose, id), so a change in
//!   one part of the model never shifts the random numbers of another part;
//! - sorts use total orders with an id tie-break, so the result never depends on the sort
//!   algorithm of `std`.
//!
//! A pinned digest test (`golden_digest_is_pinned`) fails whenever the bytes change. Change it
//! only on purpose, and say so where samples are consumed.
//!
//! # Cost
//! Memory is O(users + items * rank): ratings are streamed user by user, never held. Each file
//! is written to `<name>.tmp` and renamed into place, so a crash never leaves a half file
//! under the real name. [`write_sample_all_at_once`], which `strata run` uses on an empty raw
//! directory, goes further: the three files appear together or not at all, and what an
//! interrupted first run left behind is recognised ([`RawDir::IncompleteSample`]) and replaced.

pub mod adtech;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Latent rank of the generative model (users' and movies' factor vectors).
pub const RANK: usize = 12;

/// ML-1M genres, in the order genre lists are written.
pub const GENRES: [&str; 18] = [
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// ML-1M's rating count, the reference for [`SampleSpec::for_ratings`].
const ML1M_RATINGS: u64 = 1_000_209;
const ML1M_USERS: u32 = 6_040;
const ML1M_ITEMS: u32 = 3_706;

/// ML-1M's timestamp range: 2000-04-25 23:05:32 .. 2003-02-28 17:49:50 UTC.
const TS_MIN: u64 = 956_703_932;
const TS_MAX: u64 = 1_046_454_590;
/// ML-1M users all joined in 2000; their first rating falls before 2001-01-01.
const JOIN_END: u64 = 978_307_200;

// --- Model parameters (changing any of them changes the bytes: see the module invariant). ---
/// ML-1M's mean rating, the intercept of the latent score. (The cut points are calibrated
/// per sample, so the intercept only puts scores on the familiar 1-5 scale.)
const GLOBAL_MEAN: f64 = 3.58;
const USER_BIAS_SD: f64 = 0.40;
const ITEM_BIAS_SD: f64 = 0.45;
/// Correlation of a movie's quality bias with its (log) popularity: popular movies tend to be
/// better rated, as in MovieLens, without popularity deciding the rating.
const POP_QUALITY_CORR: f64 = 0.45;
/// Standard deviation of each user-factor component; as the movie-factor variances sum to 1,
/// the dot product over random movies has about this standard deviation too.
const TASTE_SD: f64 = 0.65;
const NOISE_SD: f64 = 0.65;
/// Variance of movie-factor dimension k is proportional to FACTOR_DECAY^k (summing to 1): a
/// few dominant tastes and many minor ones, like the spectrum of real rating matrices, which
/// is what lets low-rank models find them.
const FACTOR_DECAY: f64 = 0.7;
/// Popularity shape, see `Model::new`.
const POP_CUTOFF: f64 = 3.2;
const POP_HEAD: f64 = 0.012;
/// Taste tilt of item choice: weight `pop * exp(TILT * min(z, TAU))`.
const TILT: f64 = 1.4;
const TAU: f64 = 2.0;
/// Activity is `min + lognormal(0, ACTIVITY_SIGMA)`-proportional extra ratings.
const ACTIVITY_SIGMA: f64 = 1.1;
const MIN_PER_USER: u64 = 20;
/// A user whose count exceeds `items / DENSE_SWITCH` is sampled exhaustively (Gumbel top-k
/// over all items) instead of by rejection, so heavy users never loop on a nearly full set.
const DENSE_SWITCH: usize = 8;
/// Proposals per batch of the rejection sampler.
const BATCH: usize = 32;
/// ML-1M's rating histogram (counts of 1..=5), the target of every sample.
const ML1M_HISTOGRAM: [u64; 5] = [56_174, 107_557, 261_197, 348_971, 226_310];
/// Pilot that calibrates the rating cut points (see `Model::calibrate_cuts`): about this
/// many users (1,000 to 2,000; all in smaller samples), at most this many of their scores.
const PILOT_USERS: usize = 1_000;
const PILOT_RATINGS: u64 = 250_000;

// Stream tags: one independent random stream per (purpose, id).
const TAG_GLOBAL: u64 = 1;
const TAG_ITEM: u64 = 2;
const TAG_POPULARITY: u64 = 3;
const TAG_ACTIVITY: u64 = 4;
const TAG_USER: u64 = 5;
const TAG_MOVIE: u64 = 6;

/// Shape of a sample. Same spec => byte-identical files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleSpec {
    /// Number of users (ids 1..=users); every one gets at least one rating.
    pub users: u32,
    /// Number of movies (ids 1..=items); a few unpopular ones may get no rating, as in ML.
    pub items: u32,
    /// Exact number of rating lines.
    pub ratings: u64,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for SampleSpec {
    /// MovieLens-1M shape: 6,040 users, 3,706 rated movies, 1,000,209 ratings, seed 42.
    fn default() -> Self {
        SampleSpec {
            users: ML1M_USERS,
            items: ML1M_ITEMS,
            ratings: ML1M_RATINGS,
            seed: 42,
        }
    }
}

impl SampleSpec {
    /// Shape for a rating count (seed 42): users scale linearly (6,040 per 1,000,209 ratings),
    /// items sublinearly (`3,706 * (ratings / 1,000,209)^0.86`), so 1,000,209 gives exactly
    /// the ML-1M shape and 25M gives ~151k users and ~59k items (ML-25M: 162k, 59k rated).
    ///
    /// Small counts stay sensible and valid: at least `ceil(sqrt(ratings))` users (1,000
    /// ratings -> 32 users) and enough items for a density of at most 20 % (-> 157 items).
    /// Every result with `ratings >= 1` passes [`SampleSpec::validate`]; `ratings == 0` does not.
    #[must_use]
    pub fn for_ratings(ratings: u64) -> SampleSpec {
        let r = ratings as f64;
        let scale = r / ML1M_RATINGS as f64;
        let linear_users = (f64::from(ML1M_USERS) * scale).round();
        let floor_users = r.sqrt().ceil();
        let users_f = linear_users.max(floor_users).max(1.0).min(r.max(1.0));
        let users = clamp_u32(users_f);
        let sublinear_items = if ratings == 0 {
            1.0
        } else {
            (f64::from(ML1M_ITEMS) * det_exp(0.86 * det_ln(scale))).round()
        };
        let density_items = (5.0 * r / f64::from(users)).ceil();
        let items = clamp_u32(sublinear_items.max(density_items).max(1.0));
        SampleSpec {
            users,
            items,
            ratings,
            seed: 42,
        }
    }

    /// `Ok` when a sample of this shape can exist.
    ///
    /// # Errors
    /// The reason and what to change when there are no users or no items, fewer ratings than
    /// users (each user needs one), or more ratings than half of all user-movie pairs.
    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 {
            return Err("sample spec: users must be at least 1 (got 0)".to_string());
        }
        if self.items == 0 {
            return Err("sample spec: items must be at least 1 (got 0)".to_string());
        }
        if self.ratings < u64::from(self.users) {
            return Err(format!(
                "sample spec: {} ratings cannot give each of {} users at least 1 rating \
                 (use at least {} ratings or at most {} users)",
                self.ratings, self.users, self.users, self.ratings
            ));
        }
        let cells = u128::from(self.users) * u128::from(self.items);
        if u128::from(self.ratings) * 2 > cells {
            return Err(format!(
                "sample spec: {} ratings exceed half of the {} x {} = {} user-movie pairs \
                 (at most {} ratings for this shape; add users or items, or use \
                 SampleSpec::for_ratings)",
                self.ratings,
                self.users,
                self.items,
                cells,
                cells / 2
            ));
        }
        Ok(())
    }
}

fn clamp_u32(x: f64) -> u32 {
    if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

/// What [`write_sample`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    /// Lines in `users.dat`.
    pub users: u32,
    /// Lines in `movies.dat`.
    pub items: u32,
    /// Lines in `ratings.dat`.
    pub ratings: u64,
    /// `ratings.dat`, `movies.dat`, `users.dat`, in that order.
    pub files: Vec<PathBuf>,
}

/// Writes `ratings.dat`, `movies.dat` and `users.dat` into `out_dir` (created if missing),
/// replacing files of those names. An invalid spec is an `InvalidInput` error carrying the
/// [`SampleSpec::validate`] message; nothing is written then.
///
/// # Errors
/// `InvalidInput` for an invalid spec; otherwise any error creating the directory or
/// writing, flushing or renaming a file. Each file is replaced whole or not at all, but a
/// failure can leave `movies.dat`/`users.dat` new and `ratings.dat` old.
pub fn write_sample(spec: &SampleSpec, out_dir: &Path) -> io::Result<SampleSummary> {
    spec.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    fs::create_dir_all(out_dir)?;
    let model = Model::new(spec);
    let ratings = out_dir.join("ratings.dat");
    let movies = out_dir.join("movies.dat");
    let users = out_dir.join("users.dat");
    write_replacing(&movies, |w| model.write_movies(w))?;
    write_replacing(&users, |w| model.write_users(w))?;
    write_replacing(&ratings, |w| model.write_ratings(w))?;
    Ok(SampleSummary {
        users: spec.users,
        items: spec.items,
        ratings: spec.ratings,
        files: vec![ratings, movies, users],
    })
}

/// The files of a sample, in the order [`write_sample`] lists them.
pub const SAMPLE_FILES: [&str; 3] = ["ratings.dat", "movies.dat", "users.dat"];

/// Present in a raw directory while [`write_sample_all_at_once`] moves files in one by one.
const INCOMPLETE_MARKER: &str = ".strata-sample-incomplete";

/// What a raw directory holds, as far as generating a sample into it is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum RawDir {
    /// Missing, or no visible files: a sample may be written.
    Empty,
    /// Only some of the sample's files and their `.tmp` partials, as an interrupted first run
    /// leaves them: the listed files are leftovers to remove before writing the sample again.
    IncompleteSample(Vec<PathBuf>),
    /// Anything else is the user's data: never touched.
    Data,
}

impl RawDir {
    /// Looks at `dir` (hidden files are ignored).
    pub fn inspect(dir: &Path) -> RawDir {
        let Ok(entries) = fs::read_dir(dir) else {
            return RawDir::Empty;
        };
        let mut visible = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                visible.push((name, entry.path()));
            }
        }
        if visible.is_empty() {
            return RawDir::Empty;
        }
        let is_sample_file = |name: &str| {
            let base = name.strip_suffix(".tmp").unwrap_or(name);
            SAMPLE_FILES.contains(&base)
        };
        // Only what a sample writer leaves is taken for a sample: a `.tmp` partial (older versions
        // wrote the files in place) or the marker of an interrupted move. A directory of the
        // user's own `ratings.dat` alone is data, never removed.
        let interrupted = dir.join(INCOMPLETE_MARKER).exists()
            || visible.iter().any(|(name, _)| name.ends_with(".tmp"));
        if interrupted && visible.iter().all(|(name, _)| is_sample_file(name)) {
            let mut leftovers: Vec<PathBuf> = visible.into_iter().map(|(_, p)| p).collect();
            leftovers.sort();
            return RawDir::IncompleteSample(leftovers);
        }
        RawDir::Data
    }
}

/// Writes a sample into `dir` so that it appears all at once: the files are written into a
/// staging directory beside `dir` and moved in with one directory rename (or, when `dir` holds
/// hidden files, one file rename each, ratings last). A crash leaves either no sample or, at
/// worst, an [`RawDir::IncompleteSample`] that the next call replaces. Staging directories left
/// by killed writers are removed first.
pub fn write_sample_all_at_once(spec: &SampleSpec, dir: &Path) -> io::Result<SampleSummary> {
    spec.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "raw".into());
    fs::create_dir_all(&parent)?;
    let staging_prefix = format!(".{name}.sample-");
    for entry in fs::read_dir(&parent)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&staging_prefix)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    if let RawDir::IncompleteSample(leftovers) = RawDir::inspect(dir) {
        for file in leftovers {
            fs::remove_file(file)?;
        }
        let _ = fs::remove_file(dir.join(INCOMPLETE_MARKER));
    }
    let staging = parent.join(format!("{staging_prefix}{}", std::process::id()));
    let summary = write_sample(spec, &staging)?;
    // Renaming a directory over an empty one replaces it; over one with hidden files it fails.
    let moved = match fs::rename(&staging, dir) {
        Ok(()) => Ok(()),
        Err(_) => {
            fs::create_dir_all(dir)?;
            // Until the marker is gone, the directory reads as an incomplete sample.
            let marker = dir.join(INCOMPLETE_MARKER);
            File::create(&marker)?;
            SAMPLE_FILES
                .iter()
                .try_for_each(|file| fs::rename(staging.join(file), dir.join(file)))
                .and_then(|()| fs::remove_file(&marker))
                .and_then(|()| fs::remove_dir(&staging))
        }
    };
    if let Err(e) = moved {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(SampleSummary {
        files: SAMPLE_FILES.iter().map(|f| dir.join(f)).collect(),
        ..summary
    })
}

/// Like [`write_sample`], into any writers (the same bytes the files would hold). Wrap
/// unbuffered writers in a `BufWriter`: lines are written a user or a movie at a time.
///
/// # Errors
/// `InvalidInput` for an invalid spec (before anything is written), or the first write error.
pub fn write_sample_to(
    spec: &SampleSpec,
    ratings: &mut impl Write,
    movies: &mut impl Write,
    users: &mut impl Write,
) -> io::Result<()> {
    spec.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let model = Model::new(spec);
    model.write_movies(movies)?;
    model.write_users(users)?;
    model.write_ratings(ratings)
}

/// Writes through `<path>.tmp` and renames, so `path` is either the old file or the new one.
fn write_replacing(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        fill(&mut w)?;
        w.into_inner().map_err(io::IntoInnerError::into_error)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Deterministic math: `+ - * /` and bit manipulation only (see the module invariant).
// ---------------------------------------------------------------------------------------------

/// ln 2 split in a high part with trailing zero bits and the rest (fdlibm's constants).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1/n` for the series below (multiplying by a constant is much cheaper than dividing).
const INV: [f64; 22] = {
    let mut a = [0.0; 22];
    let mut n = 1;
    while n < a.len() {
        a[n] = 1.0 / n as f64;
        n += 1;
    }
    a
};

/// Natural logarithm, about 1 ulp, for finite `x > 0` (`-inf` for 0, NaN below).
fn det_ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64;
    if e == 0 {
        // Subnormal: scale by 2^54 into the normal range.
        bits = (x * f64::from_bits((1023 + 54) << 52)).to_bits();
        e = ((bits >> 52) & 0x7ff) as i64 - 54;
    }
    e -= 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716: the series to s^21 is exact to ~1e-17.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut poly = INV[21];
    for k in (1..10).rev() {
        poly = INV[2 * k + 1] + s2 * poly;
    }
    let ln_m = 2.0 * s + 2.0 * s * s2 * poly;
    let ef = e as f64;
    ef * LN2_HI + (ef * LN2_LO + ln_m)
}

/// `e^x`, about 1 ulp.
fn det_exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.78 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    // k = x / ln 2 rounded (by truncation, as `round` is a libm call on baseline x86-64).
    let t = x * std::f64::consts::LOG2_E;
    let k = if t >= 0.0 {
        (t + 0.5) as i64
    } else {
        (t - 0.5) as i64
    } as f64;
    let r = (x - k * LN2_HI) - k * LN2_LO; // |r| <= 0.35
    // Taylor series to r^15: error < 1e-19 relative.
    let mut p = 1.0;
    for n in (1..=15).rev() {
        p = 1.0 + r * p * INV[n];
    }
    let k = k as i64;
    if k > 1023 {
        2.0 * p * f64::from_bits(((k - 1 + 1023) as u64) << 52)
    } else if k >= -1022 {
        p * f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        p * f64::from_bits(((k + 1023 + 60) as u64) << 52) * f64::from_bits((1023 - 60) << 52)
    }
}

// ---------------------------------------------------------------------------------------------
// PRNG: SplitMix64 seeding xoshiro256**, implemented here so the streams never change.
// ---------------------------------------------------------------------------------------------

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
}

/// 2^-53.
const UNIT: f64 = 1.0 / (1u64 << 53) as f64;

struct Rng {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    /// The independent stream for one purpose (`tag`) and one id (`index`) under `seed`.
    fn stream(seed: u64, tag: u64, index: u64) -> Rng {
        let key = mix64(seed ^ 0x5354_5241_5441_0001); // "STRATA"
        let key = mix64(key ^ tag.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let key = mix64(key.wrapping_add(index.wrapping_mul(0xd1b5_4a32_d192_ed03)));
        let mut sm = SplitMix64(key);
        let mut s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        if s == [0; 4] {
            s[0] = 1; // the one state xoshiro cannot leave
        }
        Rng {
            s,
            spare_normal: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * UNIT
    }

    /// Uniform in (0, 1): safe under `ln`, and `1 - u` is safe too.
    fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * UNIT
    }

    /// Uniform integer in [0, n), unbiased (Lemire's multiply-shift with rejection).
    fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Standard normal: Marsaglia's polar form of Box-Muller (no trigonometry, so no libm).
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.unit() - 1.0;
            let v = 2.0 * self.unit() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * det_ln(s) / s).sqrt();
                self.spare_normal = Some(v * f);
                return u * f;
            }
        }
    }

    /// Standard Gumbel.
    fn gumbel(&mut self) -> f64 {
        -det_ln(-det_ln(self.open_unit()))
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.index(words.len())]
    }

    /// Index drawn with probability proportional to integer weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }
}

// ---------------------------------------------------------------------------------------------
// The generative model.
// ---------------------------------------------------------------------------------------------

/// ML-1M genre frequencies (movies per genre), the prior of a movie's genres.
const GENRE_COUNTS: [f64; 18] = [
    503.0, 283.0, 105.0, 251.0, 1200.0, 211.0, 127.0, 1603.0, 68.0, 44.0, 343.0, 114.0, 106.0,
    471.0, 276.0, 492.0, 143.0, 68.0,
];
const AGES: [u8; 7] = [1, 18, 25, 35, 45, 50, 56];
/// ML-1M users per age group.
const AGE_COUNTS: [u32; 7] = [222, 1103, 2096, 1193, 550, 496, 380];
/// ML-1M users per occupation 0..=20.
const OCCUPATION_COUNTS: [u32; 21] = [
    711, 528, 267, 173, 759, 112, 236, 679, 17, 92, 195, 129, 388, 142, 302, 144, 241, 502, 70, 72,
    281,
];
const K12_STUDENT: u8 = 10;
const RETIRED: u8 = 13;

struct UserProfile {
    female: bool,
    age: u8,
    occupation: u8,
    zip: u32,
    zip_ext: Option<u32>,
    factors: [f64; RANK],
    /// Turns `p . q` into a standard normal over random movies.
    inv_taste_sd: f64,
    bias: f64,
    /// Time of the first session and mean session length (seconds).
    t0: f64,
    session: f64,
}

/// One generated rating, before formatting (tests and calibration read these).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), allow(dead_code))] // `dot` and `score` are read by tests
struct RatingEvent {
    user: u32,
    item: u32,
    /// `p_u . q_i`, the taste part of the latent score.
    dot: f64,
    /// The latent score that the cut points turn into the rating.
    score: f64,
    rating: u8,
    timestamp: u64,
}

/// Reused per-user buffers of the item sampler.
struct Scratch {
    seen: Vec<bool>,
    chosen: Vec<(u32, f64)>,
    keys: Vec<(f64, u32)>,
}

/// Movies are stored by popularity rank, not by id: draws hit the popular ranks most, and
/// keeping those together keeps them in cache (2x faster at 25M ratings).
struct Model {
    spec: SampleSpec,
    /// Movie factors, `RANK` per movie, component k ~ N(0, v_k) (see [`factor_spectrum`]),
    /// stored as `f32` to halve the cache footprint (the `f32` values are the model's values).
    item_factors: Vec<f32>,
    item_bias: Vec<f64>,
    /// Log popularity weight (up to a constant).
    ln_pop: Vec<f64>,
    /// 0-based movie id of each rank, and its inverse.
    movie_of_rank: Vec<u32>,
    rank_of_movie: Vec<u32>,
    /// Alias table over ranks: (keep the column if the low 32 bits are below this, else).
    alias: Vec<(u32, u32)>,
    gender_dir: [f64; RANK],
    age_dir: [f64; RANK],
    genre_dirs: [[f64; RANK]; 18],
    ln_genre_prior: [f64; 18],
    counts: Vec<u32>,
    /// Latent score thresholds for ratings 2, 3, 4, 5.
    cuts: [f64; 4],
}

fn normal_vec(rng: &mut Rng, sd: f64) -> [f64; RANK] {
    let mut v = [0.0; RANK];
    for x in &mut v {
        *x = sd * rng.normal();
    }
    v
}

/// Variance of each movie-factor dimension: proportional to FACTOR_DECAY^k, summing to 1.
fn factor_spectrum() -> [f64; RANK] {
    let mut v = [0.0; RANK];
    let mut w = 1.0;
    for x in &mut v {
        *x = w;
        w *= FACTOR_DECAY;
    }
    let total: f64 = v.iter().sum();
    v.map(|x| x / total)
}

fn dot(a: &[f64; RANK], b: &[f32]) -> f64 {
    // Four fixed accumulators: fast, and the summation order is part of the code.
    let mut acc = [0.0f64; 4];
    for (ca, cb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for j in 0..4 {
            acc[j] += ca[j] * f64::from(cb[j]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Activity per user: heavy-tailed, each in `[min(20, ratings/users), ceil(0.8 items)]`,
/// summing exactly to `spec.ratings`. Needs a valid spec.
fn user_counts(spec: &SampleSpec) -> Vec<u32> {
    let n = spec.users as usize;
    let min_per = (spec.ratings / n as u64).min(MIN_PER_USER);
    let cap = (u64::from(spec.items) * 4).div_ceil(5).max(min_per);
    let room = cap - min_per;
    let extra_total = spec.ratings - min_per * n as u64;
    let mut rng = Rng::stream(spec.seed, TAG_ACTIVITY, 0);
    let w: Vec<f64> = (0..n)
        .map(|_| det_exp(ACTIVITY_SIGMA * rng.normal()))
        .collect();
    let mut extra = vec![0u64; n];
    if extra_total > 0 {
        // Water-filling: the heaviest users are capped at `room`, the rest share what is left
        // in proportion to their weight. Capping one raises everyone else's share, so walk
        // the users from heaviest down and stop at the first one that fits.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
        let mut suffix = vec![0.0f64; n + 1];
        for k in (0..n).rev() {
            suffix[k] = suffix[k + 1] + w[order[k]];
        }
        let mut capped = 0;
        let mut scale = 0.0;
        while capped < n {
            let remaining = extra_total as f64 - (capped as u64 * room) as f64;
            scale = remaining / suffix[capped];
            if scale * w[order[capped]] >= room as f64 {
                capped += 1;
            } else {
                break;
            }
        }
        for (k, &u) in order.iter().enumerate() {
            extra[u] = if k < capped {
                room
            } else {
                ((scale * w[u]) as u64).min(room) // >= 0: `as` is floor
            };
        }
        // Float rounding leaves a small remainder (< n): hand it out one per user in id order.
        let mut assigned: u64 = extra.iter().sum();
        while assigned < extra_total {
            for e in extra.iter_mut() {
                if assigned == extra_total {
                    break;
                }
                if *e < room {
                    *e += 1;
                    assigned += 1;
                }
            }
        }
        while assigned > extra_total {
            for e in extra.iter_mut() {
                if assigned == extra_total {
                    break;
                }
                if *e > 0 {
                    *e -= 1;
                    assigned -= 1;
                }
            }
        }
    }
    extra.iter().map(|&e| (min_per + e) as u32).collect()
}

impl Scratch {
    fn new(items: usize) -> Scratch {
        Scratch {
            seen: vec![false; items],
            chosen: Vec::new(),
            keys: Vec::new(),
        }
    }
}

impl Model {
    fn new(spec: &SampleSpec) -> Model {
        let n = spec.items as usize;
        let seed = spec.seed;

        let mut global = Rng::stream(seed, TAG_GLOBAL, 0);
        let gender_dir = normal_vec(&mut global, 1.0);
        let age_dir = normal_vec(&mut global, 1.0);
        let mut genre_dirs = [[0.0; RANK]; 18];
        for g in &mut genre_dirs {
            *g = normal_vec(&mut global, 1.0);
        }
        let ln_genre_prior = GENRE_COUNTS.map(det_ln);

        // Popularity: a random rank per movie (ids carry no popularity). The weight of rank
        // fraction x is exp(-POP_CUTOFF x^2) / (x + c): Zipf-like in the head, thinning faster
        // in the tail, which matches MovieLens' rank-frequency curve (top 10 % of movies get
        // ~45 % of the ratings, the median movie ~0.4x the mean, the rarest ~0.02x).
        // c shrinks with more movies, so bigger samples get a steeper head like ML-25M.
        let mut movie_of_rank: Vec<u32> = (0..n as u32).collect();
        let mut pop_rng = Rng::stream(seed, TAG_POPULARITY, 0);
        for i in (1..n).rev() {
            let j = pop_rng.index(i + 1);
            movie_of_rank.swap(i, j);
        }
        let mut rank_of_movie = vec![0u32; n];
        for (r, &m) in movie_of_rank.iter().enumerate() {
            rank_of_movie[m as usize] = r as u32;
        }
        let head = (POP_HEAD * (f64::from(ML1M_ITEMS) / n as f64).sqrt()).min(0.5);
        let ln_pop: Vec<f64> = (0..n)
            .map(|r| {
                let x = (r as f64 + 0.5) / n as f64;
                -POP_CUTOFF * x * x - det_ln(x + head)
            })
            .collect();
        let mean = ln_pop.iter().sum::<f64>() / n as f64;
        let var = ln_pop.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        let alias = alias_table(&ln_pop);

        let spectrum = factor_spectrum();
        let mut item_factors = Vec::with_capacity(n * RANK);
        let mut item_bias = Vec::with_capacity(n);
        let independent = (1.0 - POP_QUALITY_CORR * POP_QUALITY_CORR).sqrt();
        for (&movie, &lp) in movie_of_rank.iter().zip(&ln_pop) {
            let mut rng = Rng::stream(seed, TAG_ITEM, u64::from(movie));
            for v in spectrum {
                item_factors.push((v.sqrt() * rng.normal()) as f32);
            }
            let z_pop = (lp - mean) / sd;
            item_bias.push(ITEM_BIAS_SD * (POP_QUALITY_CORR * z_pop + independent * rng.normal()));
        }

        let mut model = Model {
            spec: *spec,
            item_factors,
            item_bias,
            ln_pop,
            movie_of_rank,
            rank_of_movie,
            alias,
            gender_dir,
            age_dir,
            genre_dirs,
            ln_genre_prior,
            counts: user_counts(spec),
            cuts: [0.0; 4],
        };
        model.cuts = model.calibrate_cuts();
        model
    }

    /// Factors of the movie at popularity rank `r`.
    fn item_factors(&self, r: usize) -> &[f32] {
        &self.item_factors[r * RANK..(r + 1) * RANK]
    }

    /// A popularity rank: Walker's alias method, one draw and one table entry.
    fn draw_rank(&self, rng: &mut Rng) -> usize {
        let x = rng.next_u64();
        let col = (((x >> 32) * self.alias.len() as u64) >> 32) as usize;
        let (keep_below, alias) = self.alias[col];
        if (x as u32) < keep_below {
            col
        } else {
            alias as usize
        }
    }

    /// The user's profile, and their stream positioned after it (for item choice and ratings).
    fn user(&self, u: u32) -> (UserProfile, Rng) {
        let mut rng = Rng::stream(self.spec.seed, TAG_USER, u64::from(u));
        let female = rng.unit() < 0.283;
        let age_idx = rng.weighted(&AGE_COUNTS);
        let age = AGES[age_idx];
        let occupation = if age == 1 && rng.unit() < 0.7 {
            K12_STUDENT
        } else if age == 56 && rng.unit() < 0.4 {
            RETIRED
        } else {
            rng.weighted(&OCCUPATION_COUNTS) as u8
        };
        let zip = rng.below(100_000) as u32;
        let zip_ext = (rng.unit() < 0.02).then(|| rng.below(10_000) as u32);

        // Taste: mostly individual, partly shared by gender and age group.
        let g = if female { -1.0 } else { 1.0 };
        let a = (age_idx as f64 - 2.5) / 1.6;
        let mut factors = [0.0; RANK];
        for (k, f) in factors.iter_mut().enumerate() {
            *f = TASTE_SD
                * (0.85 * rng.normal()
                    + 0.35 * g * self.gender_dir[k]
                    + 0.35 * a * self.age_dir[k]);
        }
        // Over random movies, p . q ~ N(0, sum_k p_k^2 v_k).
        let var: f64 = factors
            .iter()
            .zip(factor_spectrum())
            .map(|(x, v)| x * x * v)
            .sum();
        let inv_taste_sd = if var > 0.0 { 1.0 / var.sqrt() } else { 0.0 };
        let bias = USER_BIAS_SD * rng.normal();
        let t0 = TS_MIN as f64 + (JOIN_END - TS_MIN) as f64 * rng.unit();
        // Sessions last from minutes to weeks: lognormal around 3 hours.
        let session = det_exp(det_ln(3.0 * 3600.0) + 1.5 * rng.normal()).min(120.0 * 86_400.0);
        let profile = UserProfile {
            female,
            age,
            occupation,
            zip,
            zip_ext,
            factors,
            inv_taste_sd,
            bias,
            t0,
            session,
        };
        (profile, rng)
    }

    /// Draws `count` distinct movies for a user into `scratch.chosen` (with their dot
    /// products): without replacement, each draw proportional to
    /// `pop(i) * exp(TILT * min(z_i, TAU))` among the movies not yet drawn.
    fn choose_items(&self, p: &UserProfile, count: usize, rng: &mut Rng, scratch: &mut Scratch) {
        let n = self.spec.items as usize;
        scratch.chosen.clear();
        if count * DENSE_SWITCH > n {
            // Exhaustive: Gumbel top-k over all movies is the same distribution as successive
            // draws, in O(items) with no rejection loop however full the set gets.
            scratch.keys.clear();
            for i in 0..n {
                let z = (dot(&p.factors, self.item_factors(i)) * p.inv_taste_sd).min(TAU);
                let key = self.ln_pop[i] + TILT * z + rng.gumbel();
                scratch.keys.push((key, i as u32));
            }
            let by_key = |a: &(f64, u32), b: &(f64, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            if count < n {
                scratch.keys.select_nth_unstable_by(count, by_key);
                scratch.keys.truncate(count);
            }
            scratch.keys.sort_unstable_by(by_key);
            for &(_, i) in &scratch.keys {
                let d = dot(&p.factors, self.item_factors(i as usize));
                scratch.chosen.push((i, d));
            }
        } else {
            // Rejection: popularity from the alias table, taste by acceptance with probability
            // exp(-s), s = TILT * (TAU - min(z, TAU)) >= 0, duplicates redrawn. At most 1/8 of
            // the movies are taken, so most of the mass is always still available.
            // Proposals come in batches: all ranks first, then all dot products (independent
            // loads the CPU overlaps, 2x faster when factors miss the cache), then the
            // decisions in order. Proposals left in the last batch are discarded.
            let mut ranks = [0usize; BATCH];
            let mut units = [0.0f64; BATCH];
            let mut dots = [0.0f64; BATCH];
            while scratch.chosen.len() < count {
                for (r, u) in ranks.iter_mut().zip(&mut units) {
                    *r = self.draw_rank(rng);
                    *u = rng.unit();
                }
                for (d, &r) in dots.iter_mut().zip(&ranks) {
                    *d = dot(&p.factors, self.item_factors(r));
                }
                for ((&i, &u), &d) in ranks.iter().zip(&units).zip(&dots) {
                    if scratch.seen[i] {
                        continue;
                    }
                    let s = TILT * (TAU - d * p.inv_taste_sd);
                    if s > 0.0 && !accept(u, s) {
                        continue;
                    }
                    scratch.seen[i] = true;
                    scratch.chosen.push((i as u32, d));
                    if scratch.chosen.len() == count {
                        break;
                    }
                }
            }
            for &(i, _) in &scratch.chosen {
                scratch.seen[i as usize] = false;
            }
        }
        // Rows of a user come out in no meaningful order (like ML-1M), not in draw order,
        // which would put popular movies first.
        for k in (1..scratch.chosen.len()).rev() {
            let j = rng.index(k + 1);
            scratch.chosen.swap(k, j);
        }
    }
}

/// Vose's alias table for weights `exp(ln_w)`. Full columns alias themselves, so a `u32`
/// threshold suffices.
fn alias_table(ln_w: &[f64]) -> Vec<(u32, u32)> {
    let n = ln_w.len();
    let w: Vec<f64> = ln_w.iter().map(|&l| det_exp(l)).collect();
    let total: f64 = w.iter().sum();
    let mut p: Vec<f64> = w.iter().map(|x| x * n as f64 / total).collect();
    let mut table: Vec<(u32, u32)> = (0..n as u32).map(|i| (u32::MAX, i)).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| p[i] < 1.0);
    while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
        small.pop();
        table[s] = ((p[s] * 4_294_967_296.0) as u32, l as u32);
        p[l] = (p[l] + p[s]) - 1.0;
        if p[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    table
}

/// `u < exp(-s)` for `s > 0`, deciding most cases by the bounds
/// `1 - s <= exp(-s) <= 1 / (1 + s + s^2 / 2)` before computing the exponential.
fn accept(u: f64, s: f64) -> bool {
    if u < 1.0 - s {
        true
    } else if u * (1.0 + s + 0.5 * s * s) >= 1.0 {
        false
    } else {
        u < det_exp(-s)
    }
}

impl Model {
    /// Every rating in file order: users 1..=n, each user's rows together.
    fn for_each_rating(&self, mut f: impl FnMut(&RatingEvent) -> io::Result<()>) -> io::Result<()> {
        let mut scratch = Scratch::new(self.spec.items as usize);
        for user in 1..=self.spec.users {
            self.user_ratings(user, &self.cuts, &mut scratch, &mut f)?;
        }
        Ok(())
    }

    /// The ratings of one user (1-based), rated with `cuts`. Users are independent streams,
    /// so this gives the same events whether called for one user or for all.
    fn user_ratings(
        &self,
        user: u32,
        cuts: &[f64; 4],
        scratch: &mut Scratch,
        f: &mut impl FnMut(&RatingEvent) -> io::Result<()>,
    ) -> io::Result<()> {
        let (p, mut rng) = self.user(user);
        let count = self.counts[user as usize - 1] as usize;
        self.choose_items(&p, count, &mut rng, scratch);
        for &(i, d) in &scratch.chosen {
            let score =
                GLOBAL_MEAN + p.bias + self.item_bias[i as usize] + d + NOISE_SD * rng.normal();
            let rating = 1 + cuts.iter().filter(|&&c| score > c).count() as u8;
            // Most ratings come in sessions right after joining; some much later.
            let t = if rng.unit() < 0.85 {
                p.t0 - p.session * det_ln(rng.open_unit())
            } else {
                let v = rng.unit();
                p.t0 + (TS_MAX as f64 - p.t0) * v * v
            };
            let event = RatingEvent {
                user,
                item: self.movie_of_rank[i as usize] + 1,
                dot: d,
                score,
                rating,
                timestamp: (t as u64).min(TS_MAX), // t > 0: `as` is floor
            };
            f(&event)?;
        }
        Ok(())
    }

    /// Cut points that give ML-1M's histogram on this very shape: the ML-1M quantiles of the
    /// latent score over a pilot of evenly spaced users (every `users / PILOT_USERS`-th),
    /// thinned to at most [`PILOT_RATINGS`] scores so memory stays bounded. Fixed cut points
    /// would drift with the shape (denser samples reach further into mediocre movies).
    fn calibrate_cuts(&self) -> [f64; 4] {
        let users = self.spec.users as usize;
        let stride = (users / PILOT_USERS).max(1);
        let pilot_total: u64 = self
            .counts
            .iter()
            .step_by(stride)
            .map(|&c| u64::from(c))
            .sum();
        let keep_every = pilot_total.div_ceil(PILOT_RATINGS).max(1);
        let mut scores = Vec::with_capacity(pilot_total.min(PILOT_RATINGS) as usize + 1);
        let mut seen = 0u64;
        let mut scratch = Scratch::new(self.spec.items as usize);
        for user in (1..=users).step_by(stride) {
            let mut push = |e: &RatingEvent| {
                if seen.is_multiple_of(keep_every) {
                    scores.push(e.score);
                }
                seen += 1;
                Ok(())
            };
            self.user_ratings(user as u32, &[0.0; 4], &mut scratch, &mut push)
                .expect("collecting scores cannot fail");
        }
        let total: u64 = ML1M_HISTOGRAM.iter().sum();
        let mut cuts = [0.0; 4];
        let mut below = 0;
        for (cut, &count) in cuts.iter_mut().zip(&ML1M_HISTOGRAM) {
            below += count;
            let k = ((below as f64 / total as f64 * scores.len() as f64) as usize)
                .min(scores.len() - 1);
            *cut = *scores.select_nth_unstable_by(k, f64::total_cmp).1;
        }
        cuts
    }

    fn write_ratings(&self, w: &mut impl Write) -> io::Result<()> {
        let mut line = Vec::with_capacity(1 << 16);
        let mut written = 0u64;
        let mut current_user = 0;
        self.for_each_rating(|e| {
            if e.user != current_user || line.len() > (1 << 16) - 64 {
                w.write_all(&line)?;
                line.clear();
                current_user = e.user;
            }
            push_u64(&mut line, u64::from(e.user));
            line.extend_from_slice(b"::");
            push_u64(&mut line, u64::from(e.item));
            line.extend_from_slice(b"::");
            line.push(b'0' + e.rating);
            line.extend_from_slice(b"::");
            push_u64(&mut line, e.timestamp);
            line.push(b'\n');
            written += 1;
            Ok(())
        })?;
        w.write_all(&line)?;
        if written != self.spec.ratings {
            return Err(io::Error::other(format!(
                "sample generator bug: wrote {written} ratings, spec asked for {}",
                self.spec.ratings
            )));
        }
        w.flush()
    }

    /// Title (with year) and genres (bit g = `GENRES[g]`) of movie `i` (0-based).
    fn movie(&self, i: usize) -> (String, u32) {
        let mut rng = Rng::stream(self.spec.seed, TAG_MOVIE, i as u64);
        let mut title = make_title(&mut rng);
        // Mostly the 1990s, thinning out towards 1919 (ML-1M: half the movies are 1990-2000).
        let back = ((-12.0 * det_ln(rng.open_unit())) as u32).min(81); // `as` floors: >= 0
        let year = 2000 - back;
        title.push_str(&format!(" ({year})"));

        let k = match rng.below(100) {
            0..50 => 1,
            50..85 => 2,
            _ => 3,
        };
        // Gumbel top-k over prior + affinity of the movie's factors with each genre: genres
        // follow the latent space, so they carry signal for content-aware models.
        let q = self.item_factors(self.rank_of_movie[i] as usize);
        let mut keys = [(0.0f64, 0usize); 18];
        for (g, key) in keys.iter_mut().enumerate() {
            let affinity = dot(&self.genre_dirs[g], q);
            *key = (self.ln_genre_prior[g] + affinity + rng.gumbel(), g);
        }
        keys.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let genres = keys[..k].iter().fold(0u32, |m, &(_, g)| m | (1 << g));
        (title, genres)
    }

    fn write_movies(&self, w: &mut impl Write) -> io::Result<()> {
        let mut line = Vec::with_capacity(256);
        for i in 0..self.spec.items as usize {
            let (title, genres) = self.movie(i);
            line.clear();
            push_u64(&mut line, i as u64 + 1);
            line.extend_from_slice(b"::");
            push_latin1(&mut line, &title);
            line.extend_from_slice(b"::");
            let mut first = true;
            for (g, name) in GENRES.iter().enumerate() {
                if genres & (1 << g) != 0 {
                    if !first {
                        line.push(b'|');
                    }
                    first = false;
                    line.extend_from_slice(name.as_bytes());
                }
            }
            line.push(b'\n');
            w.write_all(&line)?;
        }
        w.flush()
    }

    fn write_users(&self, w: &mut impl Write) -> io::Result<()> {
        let mut line = Vec::with_capacity(64);
        for u in 1..=self.spec.users {
            let (p, _) = self.user(u);
            line.clear();
            push_u64(&mut line, u64::from(u));
            line.extend_from_slice(if p.female { b"::F::" } else { b"::M::" });
            push_u64(&mut line, u64::from(p.age));
            line.extend_from_slice(b"::");
            push_u64(&mut line, u64::from(p.occupation));
            line.extend_from_slice(b"::");
            push_padded(&mut line, u64::from(p.zip), 5);
            if let Some(ext) = p.zip_ext {
                line.push(b'-');
                push_padded(&mut line, u64::from(ext), 4);
            }
            line.push(b'\n');
            w.write_all(&line)?;
        }
        w.flush()
    }
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    let start = buf.len();
    push_u64(buf, n);
    let len = buf.len() - start;
    if len < width {
        buf.splice(start..start, std::iter::repeat_n(b'0', width - len));
    }
}

/// Latin-1: each char <= U+00FF is that byte. The word lists hold no others (a test checks);
/// anything else would become `?` rather than a multi-byte sequence.
fn push_latin1(buf: &mut Vec<u8>, s: &str) {
    buf.extend(
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
    );
}

// ---------------------------------------------------------------------------------------------
// Titles: word lists and ML-1M conventions. No list entry contains ':' at a word end, so no
// field can contain "::" (the only ':' is the subtitle separator ": ").
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const ADJECTIVES: &[&str] = &[
    "Last", "Lost", "Dark", "Silent", "Broken", "Golden", "Wild", "Hidden", "Crimson", "Little",
    "Great", "Secret", "Eternal", "Forgotten", "Midnight", "Dangerous", "Perfect", "Sweet", "Cold",
    "Burning", "Blue", "Naked", "Final", "Lonely", "Strange", "American", "French", "Angry",
    "Happy", "Empty", "Frozen", "Electric", "Savage", "Gentle", "Restless", "Invisible", "Fatal",
    "Deadly", "Beautiful", "Endless", "Long", "Black", "White", "Red", "Green", "Seventh", "Lucky",
    "Crazy", "Desperate", "Quiet", "Wicked", "Young", "Old", "Brave", "Holy", "Naïve",
    "Unbreakable", "Other", "Only", "Ordinary",
];

#[rustfmt::skip]
const NOUNS: &[&str] = &[
    "City", "Night", "Heart", "River", "Dream", "Kingdom", "Road", "Shadow", "Storm", "Game",
    "Mirror", "Garden", "Island", "Star", "Moon", "Summer", "Winter", "Love", "War", "Angel",
    "Ghost", "Stranger", "Hunter", "Doctor", "King", "Queen", "Prince", "Soldier", "Detective",
    "Thief", "Witness", "Bride", "Horizon", "Fire", "Rain", "Wind", "Train", "House", "Room",
    "Door", "Letter", "Promise", "Journey", "Return", "Escape", "Edge", "Circle", "Mountain",
    "Desert", "Ocean", "Sky", "Planet", "Machine", "Empire", "Revenge", "Legend", "Story", "Affair",
    "Voice", "Silence", "Blood", "Money", "Paradise", "Harbor", "Bridge", "Tower", "Castle",
    "Valley", "Forest", "Wolf", "Dragon", "Tiger", "Horse", "Café", "Fiancée", "Protégé", "Eden",
    "Apartment", "Usual Suspects", "Innocents", "Graduate",
];

#[rustfmt::skip]
const NAMES: &[&str] = &[
    "Schindler", "Nobody", "Charlie", "Jack", "Emma", "Mary", "Max", "Billy", "Harry", "Sophie",
    "Annie", "Frank", "Jimmy", "Hannah", "Maggie", "Tom", "Lucy", "Eddie", "Rosie", "Sam", "Chloé",
    "José", "Björn", "Zoë", "François", "Renée", "Ãngelo", "Muriel", "Conceição",
];

const SEQUELS: &[&str] = &["II", "III", "2", "3", "IV", "Part II", "Part III"];

/// (article, noun) pairs and qualifiers per language, for alternative titles in parentheses.
struct Language {
    nouns: &'static [(&'static str, &'static str)],
    qualifiers: &'static [&'static str],
}

const LANGUAGES: &[Language] = &[
    Language {
        nouns: &[
            ("La", "Cité"),
            ("Le", "Rêve"),
            ("La", "Maison"),
            ("Le", "Garçon"),
            ("La", "Nuit"),
            ("Le", "Château"),
            ("Les", "Enfants"),
            ("La", "Fenêtre"),
        ],
        qualifiers: &[
            "des enfants perdus",
            "de minuit",
            "à Paris",
            "du paradis",
            "d'été",
            "sans nom",
            "éternelle",
            "de ma mère",
        ],
    },
    Language {
        nouns: &[
            ("El", "Niño"),
            ("La", "Señora"),
            ("El", "Corazón"),
            ("La", "Mañana"),
            ("El", "Camino"),
        ],
        qualifiers: &[
            "del sol",
            "sin nombre",
            "de la noche",
            "perdido",
            "en Sevilla",
        ],
    },
    Language {
        nouns: &[
            ("Der", "Himmel"),
            ("Die", "Straße"),
            ("Das", "Mädchen"),
            ("Der", "König"),
            ("Die", "Nacht"),
        ],
        qualifiers: &["über Berlin", "ohne Namen", "der Träume", "im Schnee"],
    },
    Language {
        nouns: &[
            ("Il", "Postino"),
            ("La", "Città"),
            ("Il", "Giardino"),
            ("La", "Notte"),
        ],
        qualifiers: &["perduta", "di Roma", "della luna", "è bella"],
    },
    Language {
        nouns: &[
            ("O", "Irmão"),
            ("A", "Ação"),
            ("O", "Caminho"),
            ("A", "Noite"),
        ],
        qualifiers: &["de São Paulo", "perdida", "do sertão"],
    },
    Language {
        nouns: &[("", "Smultronstället"), ("", "Fönster"), ("", "Höst")],
        qualifiers: &["i Göteborg", "för alltid"],
    },
];

/// A movie title without its year, following ML-1M conventions: trailing articles
/// ("Matrix, The"), commas, apostrophes, subtitles, alternative titles in parentheses.
fn make_title(rng: &mut Rng) -> String {
    let (mut title, article_ok) = match rng.below(100) {
        0..30 => (
            format!("{} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS)),
            true,
        ),
        30..42 => (rng.pick(NOUNS).to_string(), true),
        42..55 => (
            format!("{} of the {}", rng.pick(NOUNS), rng.pick(NOUNS)),
            true,
        ),
        55..64 => (format!("{}'s {}", rng.pick(NAMES), rng.pick(NOUNS)), false),
        64..70 => (
            format!(
                "{}, {} and {}",
                rng.pick(NOUNS),
                rng.pick(NOUNS),
                rng.pick(NOUNS)
            ),
            false,
        ),
        70..78 => (
            format!(
                "{} {}: The {} {}",
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS),
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS)
            ),
            false,
        ),
        78..86 => (format!("{} & {}", rng.pick(NAMES), rng.pick(NAMES)), false),
        _ => (
            format!(
                "{} {} {}",
                rng.pick(ADJECTIVES),
                rng.pick(NOUNS),
                rng.pick(SEQUELS)
            ),
            true,
        ),
    };
    if article_ok {
        match rng.below(100) {
            0..30 => title.push_str(", The"),
            30..36 => {
                let vowel = title.starts_with(['A', 'E', 'I', 'O', 'U']);
                title.push_str(if vowel { ", An" } else { ", A" });
            }
            _ => {}
        }
    }
    if rng.below(100) < 9 {
        title.push_str(" (");
        title.push_str(&foreign_title(rng));
        title.push(')');
    }
    title
}

/// "Cité des enfants perdus, La": a foreign title with its article moved to the end.
fn foreign_title(rng: &mut Rng) -> String {
    let lang = &LANGUAGES[rng.index(LANGUAGES.len())];
    let (article, noun) = lang.nouns[rng.index(lang.nouns.len())];
    let mut s = noun.to_string();
    if rng.below(100) < 60 {
        s.push(' ');
        s.push_str(rng.pick(lang.qualifiers));
    }
    if !article.is_empty() && rng.below(100) < 80 {
        s.push_str(", ");
        s.push_str(article);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The three files of a spec, rendered in memory.
    struct Rendered {
        ratings: Vec<u8>,
        movies: Vec<u8>,
        users: Vec<u8>,
    }

    fn render(spec: &SampleSpec) -> Rendered {
        let (mut ratings, mut movies, mut users) = (Vec::new(), Vec::new(), Vec::new());
        write_sample_to(spec, &mut ratings, &mut movies, &mut users).unwrap();
        Rendered {
            ratings,
            movies,
            users,
        }
    }

    fn lines(bytes: &[u8]) -> Vec<&[u8]> {
        assert_eq!(bytes.last(), Some(&b'\n'), "file must end with a newline");
        bytes[..bytes.len() - 1].split(|&b| b == b'\n').collect()
    }

    fn fields(line: &[u8]) -> Vec<String> {
        // Latin-1 decoding: every byte is the char of the same number.
        let s: String = line.iter().map(|&b| char::from(b)).collect();
        s.split("::").map(str::to_string).collect()
    }

    fn small() -> SampleSpec {
        SampleSpec {
            users: 300,
            items: 500,
            ratings: 30_000,
            seed: 7,
        }
    }

    #[test]
    fn an_interrupted_first_run_is_recognised_and_replaced_never_the_users_data() {
        let root = tempfile::tempdir().unwrap();
        let raw = root.path().join("lake/raw");
        assert_eq!(RawDir::inspect(&raw), RawDir::Empty);

        // What a SIGKILL during an older version's first run left behind.
        fs::create_dir_all(&raw).unwrap();
        for file in ["movies.dat", "users.dat", "ratings.dat.tmp"] {
            fs::write(raw.join(file), "partial").unwrap();
        }
        // ... and a staging directory of a killed writer.
        fs::create_dir_all(root.path().join("lake/.raw.sample-999")).unwrap();
        assert!(matches!(RawDir::inspect(&raw), RawDir::IncompleteSample(l) if l.len() == 3));

        let summary = write_sample_all_at_once(&small(), &raw).unwrap();
        assert_eq!(summary.files.len(), 3);
        let mut names: Vec<String> = fs::read_dir(&raw)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["movies.dat", "ratings.dat", "users.dat"]);
        let rendered = render(&small());
        assert_eq!(fs::read(raw.join("ratings.dat")).unwrap(), rendered.ratings);
        let lake: Vec<String> = fs::read_dir(root.path().join("lake"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(lake, ["raw"], "no staging left beside the raw directory");
        assert_eq!(RawDir::inspect(&raw), RawDir::Data);

        // A user's own partial data is data.
        let own = root.path().join("own");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("ratings.dat"), "1::1::5::0\n").unwrap();
        assert_eq!(RawDir::inspect(&own), RawDir::Data);
    }

    #[test]
    fn a_raw_directory_with_hidden_files_gets_the_sample_too() {
        let root = tempfile::tempdir().unwrap();
        let raw = root.path().join("raw");
        fs::create_dir_all(&raw).unwrap();
        fs::write(raw.join(".gitkeep"), "").unwrap();
        assert_eq!(RawDir::inspect(&raw), RawDir::Empty);
        write_sample_all_at_once(&small(), &raw).unwrap();
        for file in SAMPLE_FILES {
            assert!(raw.join(file).is_file(), "{file}");
        }
        assert!(raw.join(".gitkeep").exists());
        assert!(!raw.join(INCOMPLETE_MARKER).exists());
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let pid = std::process::id();
            TempDir(std::env::temp_dir().join(format!("strata-sample-{pid}-{nanos}-{n}-{name}")))
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn same_spec_gives_identical_files_and_another_seed_does_not() {
        let spec = small();
        let dir_a = TempDir::new("a");
        let dir_b = TempDir::new("b");
        let a = write_sample(&spec, &dir_a.0).unwrap();
        let b = write_sample(&spec, &dir_b.0).unwrap();
        assert_eq!(a.files.len(), 3);
        for (fa, fb) in a.files.iter().zip(&b.files) {
            assert_eq!(fs::read(fa).unwrap(), fs::read(fb).unwrap(), "{fa:?}");
        }
        let mem = render(&spec);
        assert_eq!(fs::read(&a.files[0]).unwrap(), mem.ratings);
        assert_eq!(fs::read(&a.files[1]).unwrap(), mem.movies);
        assert_eq!(fs::read(&a.files[2]).unwrap(), mem.users);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&dir_a.0).unwrap().count(), 3);

        let other = render(&SampleSpec { seed: 8, ..spec });
        assert_ne!(other.ratings, mem.ratings);
        assert_ne!(other.movies, mem.movies);
        assert_ne!(other.users, mem.users);
    }

    #[test]
    fn summary_reports_shape_and_paths() {
        let dir = TempDir::new("summary");
        let out = dir.0.join("nested").join("deeper");
        let spec = SampleSpec {
            users: 10,
            items: 40,
            ratings: 200,
            seed: 1,
        };
        let s = write_sample(&spec, &out).unwrap();
        assert_eq!((s.users, s.items, s.ratings), (10, 40, 200));
        let names: Vec<_> = s.files.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["ratings.dat", "movies.dat", "users.dat"]);
        assert!(s.files.iter().all(|f| f.starts_with(&out) && f.exists()));
    }

    fn check_ratings(spec: &SampleSpec, bytes: &[u8]) {
        let rows = lines(bytes);
        assert_eq!(rows.len() as u64, spec.ratings);
        let mut pairs = HashSet::new();
        let mut per_user = vec![0u64; spec.users as usize + 1];
        let mut last_user = 0;
        for row in rows {
            let f = fields(row);
            assert_eq!(f.len(), 4, "{f:?}");
            let user: u32 = f[0].parse().unwrap();
            let item: u32 = f[1].parse().unwrap();
            let rating: u8 = f[2].parse().unwrap();
            let ts: u64 = f[3].parse().unwrap();
            assert!((1..=spec.users).contains(&user), "user {user}");
            assert!((1..=spec.items).contains(&item), "item {item}");
            assert!((1..=5).contains(&rating));
            assert!((TS_MIN..=TS_MAX).contains(&ts), "timestamp {ts}");
            assert!(pairs.insert((user, item)), "duplicate pair {user}::{item}");
            // Grouped by user, user 1 first, ascending.
            assert!(
                user == last_user || user == last_user + 1,
                "{last_user} -> {user}"
            );
            last_user = user;
            per_user[user as usize] += 1;
        }
        let floor = (spec.ratings / u64::from(spec.users)).min(MIN_PER_USER);
        assert!(per_user[1..].iter().all(|&c| c >= floor.max(1)));
    }

    #[test]
    fn ratings_are_exact_in_range_unique_and_cover_every_user() {
        // The rejection sampler (sparse users) and the exhaustive one (dense users).
        let dense = SampleSpec {
            users: 60,
            items: 120,
            ratings: 3_000,
            seed: 3,
        };
        for spec in [small(), dense, SampleSpec::for_ratings(1_000)] {
            spec.validate().unwrap();
            check_ratings(&spec, &render(&spec).ratings);
        }
        // Tightest valid shapes.
        for spec in [
            SampleSpec {
                users: 1,
                items: 2,
                ratings: 1,
                seed: 0,
            },
            SampleSpec {
                users: 7,
                items: 10,
                ratings: 35,
                seed: 0,
            },
        ] {
            check_ratings(&spec, &render(&spec).ratings);
        }
    }

    #[test]
    fn movies_and_users_follow_the_ml1m_formats() {
        let spec = small();
        let r = render(&spec);

        let movies = lines(&r.movies);
        assert_eq!(movies.len(), spec.items as usize);
        let (mut articles, mut alternates, mut one_genre) = (0, 0, 0);
        for (i, row) in movies.iter().enumerate() {
            let f = fields(row);
            assert_eq!(f.len(), 3, "{f:?}");
            assert_eq!(f[0], (i + 1).to_string());
            let title = &f[1];
            assert!(!title.starts_with(':') && !title.ends_with(':'), "{title}");
            let (name, year) = title.rsplit_once(" (").unwrap();
            let year: u32 = year.strip_suffix(')').unwrap().parse().unwrap();
            assert!((1919..=2000).contains(&year), "{title}");
            assert!(!name.is_empty());
            articles += usize::from(name.contains(", The") || name.contains(", A"));
            alternates += usize::from(name.contains(" ("));
            let genres: Vec<&str> = f[2].split('|').collect();
            assert!((1..=3).contains(&genres.len()), "{genres:?}");
            let idx: Vec<usize> = genres
                .iter()
                .map(|g| GENRES.iter().position(|x| x == g).unwrap())
                .collect();
            assert!(idx.windows(2).all(|w| w[0] < w[1]), "{genres:?}");
            one_genre += usize::from(genres.len() == 1);
        }
        assert!(articles > 50 && alternates > 10, "{articles} {alternates}");
        assert!((150..350).contains(&one_genre), "{one_genre}");
        // Latin-1, not UTF-8: accented letters are single bytes.
        assert!(r.movies.iter().any(|&b| b >= 0x80));
        assert!(std::str::from_utf8(&r.movies).is_err());

        let users = lines(&r.users);
        assert_eq!(users.len(), spec.users as usize);
        let mut male = 0;
        for (u, row) in users.iter().enumerate() {
            let f = fields(row);
            assert_eq!(f.len(), 5, "{f:?}");
            assert_eq!(f[0], (u + 1).to_string());
            assert!(f[1] == "M" || f[1] == "F");
            male += usize::from(f[1] == "M");
            assert!(AGES.contains(&f[2].parse().unwrap()));
            assert!(f[3].parse::<u8>().unwrap() <= 20);
            let zip = &f[4];
            let ok = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
            match zip.split_once('-') {
                None => assert!(ok(zip, 5), "{zip}"),
                Some((a, b)) => assert!(ok(a, 5) && ok(b, 4), "{zip}"),
            }
        }
        assert!((180..250).contains(&male), "{male} of 300 male");
    }

    #[test]
    fn word_lists_are_latin1_and_cannot_make_a_separator() {
        let mut all: Vec<&str> = [ADJECTIVES, NOUNS, NAMES, SEQUELS].concat();
        for l in LANGUAGES {
            all.extend(l.qualifiers);
            for (a, n) in l.nouns {
                all.push(a);
                all.push(n);
            }
        }
        for w in all {
            assert!(w.chars().all(|c| u32::from(c) <= 0xff), "{w}");
            assert!(!w.contains(':') && !w.contains('\n'), "{w}");
        }
        let mut titles = String::new();
        let mut rng = Rng::stream(0, 99, 0);
        for _ in 0..5_000 {
            titles.push_str(&make_title(&mut rng));
            titles.push('\n');
        }
        assert!(!titles.contains("::") && !titles.contains(":\n"));
        for needle in [", The\n", "'s ", ", A\n", ": The ", " (", "é"] {
            assert!(titles.contains(needle), "no title with {needle:?}");
        }
    }

    /// ML-1M: 5.6 / 10.8 / 26.1 / 34.9 / 22.6 %, on sparse and on dense shapes alike.
    #[test]
    fn rating_histogram_matches_ml1m_on_any_shape() {
        let sparse = SampleSpec {
            users: 2_000,
            items: 4_000,
            ratings: 150_000,
            seed: 42,
        };
        let dense = SampleSpec {
            users: 400,
            items: 600,
            ratings: 100_000,
            seed: 9,
        };
        let total: u64 = ML1M_HISTOGRAM.iter().sum();
        for spec in [sparse, dense] {
            let mut hist = [0u64; 5];
            Model::new(&spec)
                .for_each_rating(|e| {
                    hist[usize::from(e.rating) - 1] += 1;
                    Ok(())
                })
                .unwrap();
            for (k, (&h, &t)) in hist.iter().zip(&ML1M_HISTOGRAM).enumerate() {
                let pct = 100.0 * h as f64 / spec.ratings as f64;
                let target = 100.0 * t as f64 / total as f64;
                assert!(
                    (pct - target).abs() < 1.5,
                    "{spec:?} rating {}: {pct:.1}% vs {target:.1}%",
                    k + 1
                );
            }
        }
    }

    #[test]
    fn factors_predict_both_the_values_and_the_choice_of_movies() {
        let spec = SampleSpec {
            users: 500,
            items: 2_000,
            ratings: 30_000,
            seed: 11,
        };
        let model = Model::new(&spec);
        let mut events = Vec::new();
        model
            .for_each_rating(|e| {
                events.push(*e);
                Ok(())
            })
            .unwrap();
        // Values: ratings of the quarter best-aligned pairs beat the worst-aligned quarter.
        events.sort_by(|a, b| a.dot.total_cmp(&b.dot));
        let q = events.len() / 4;
        let mean = |es: &[RatingEvent]| {
            es.iter().map(|e| f64::from(e.rating)).sum::<f64>() / es.len() as f64
        };
        let (low, high) = (mean(&events[..q]), mean(&events[events.len() - q..]));
        assert!(high - low > 0.8, "aligned {high:.2} vs misaligned {low:.2}");
        // The score is what the cut points turn into ratings.
        assert!(events.iter().all(|e| {
            let r = 1 + model.cuts.iter().filter(|&&c| e.score > c).count() as u8;
            r == e.rating
        }));

        // Choice: top-10 by true taste + popularity finds more of a user's movies than top-10
        // by popularity alone (what a factor model can learn, versus "most popular").
        let mut rated: Vec<HashSet<u32>> = vec![HashSet::new(); spec.users as usize + 1];
        for e in &events {
            rated[e.user as usize].insert(e.item - 1);
        }
        let n = spec.items as usize;
        let (mut hits_pop, mut hits_taste) = (0, 0);
        for u in 1..=spec.users {
            let (p, _) = model.user(u);
            // Ranks are popularity order, best first.
            let mut scores: Vec<(f64, usize)> = (0..n)
                .map(|r| {
                    let z = (dot(&p.factors, model.item_factors(r)) * p.inv_taste_sd).min(TAU);
                    (model.ln_pop[r] + TILT * z, r)
                })
                .collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0));
            let set = &rated[u as usize];
            let hit = |r: usize| usize::from(set.contains(&model.movie_of_rank[r]));
            hits_taste += scores[..10].iter().map(|s| hit(s.1)).sum::<usize>();
            hits_pop += (0..10).map(hit).sum::<usize>();
        }
        assert!(
            hits_taste as f64 > 1.5 * hits_pop as f64,
            "taste {hits_taste} vs popularity {hits_pop}"
        );
    }

    #[test]
    fn activity_is_heavy_tailed_exact_and_bounded() {
        let spec = SampleSpec::default();
        let c = user_counts(&spec);
        assert_eq!(c.iter().map(|&x| u64::from(x)).sum::<u64>(), spec.ratings);
        let min = *c.iter().min().unwrap();
        let max = *c.iter().max().unwrap();
        assert!(min >= 20, "min {min}");
        assert!(u64::from(max) <= (u64::from(spec.items) * 4).div_ceil(5));
        let mean = spec.ratings as f64 / f64::from(spec.users);
        let mut sorted = c.clone();
        sorted.sort_unstable();
        let median = f64::from(sorted[sorted.len() / 2]);
        // ML-1M: mean 166, median 96, max 2314.
        assert!(
            median < 0.8 * mean && f64::from(max) > 6.0 * mean,
            "{median} {max}"
        );

        // Caps bind when the spec is dense; the total stays exact.
        let dense = SampleSpec {
            users: 50,
            items: 100,
            ratings: 2_500,
            seed: 5,
        };
        let c = user_counts(&dense);
        assert_eq!(c.iter().map(|&x| u64::from(x)).sum::<u64>(), 2_500);
        assert!(c.iter().all(|&x| (20..=80).contains(&x)));
    }

    #[test]
    fn validate_rejects_impossible_specs_with_a_reason() {
        let ok = SampleSpec::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (SampleSpec { users: 0, ..ok }, "users must be at least 1"),
            (SampleSpec { items: 0, ..ok }, "items must be at least 1"),
            (
                SampleSpec {
                    ratings: 6_039,
                    ..ok
                },
                "at least 1 rating",
            ),
            (
                SampleSpec {
                    users: 10,
                    items: 10,
                    ratings: 51,
                    seed: 0,
                },
                "exceed half of the 10 x 10 = 100",
            ),
        ];
        for (spec, needle) in cases {
            let err = spec.validate().unwrap_err();
            assert!(err.contains(needle), "{err}");
            let io_err = write_sample_to(&spec, &mut io::sink(), &mut io::sink(), &mut io::sink())
                .unwrap_err();
            assert_eq!(io_err.kind(), io::ErrorKind::InvalidInput);
        }
        let half = SampleSpec {
            users: 10,
            items: 10,
            ratings: 50,
            seed: 0,
        };
        assert_eq!(half.validate(), Ok(()));
    }

    #[test]
    fn for_ratings_scales_like_movielens_and_stays_valid() {
        let ml1m = SampleSpec::for_ratings(1_000_209);
        assert_eq!(ml1m, SampleSpec::default());
        let ml25m = SampleSpec::for_ratings(25_000_000);
        assert!((150_000..165_000).contains(&ml25m.users), "{ml25m:?}");
        assert!((55_000..63_000).contains(&ml25m.items), "{ml25m:?}");
        let tiny = SampleSpec::for_ratings(1_000);
        assert!((10..100).contains(&tiny.users) && (50..500).contains(&tiny.items));
        for r in [1, 2, 3, 10, 99, 1_000, 12_345, 100_000, 333_333, 5_000_000] {
            let s = SampleSpec::for_ratings(r);
            assert_eq!(s.ratings, r);
            assert_eq!(s.validate(), Ok(()), "{s:?}");
        }
        assert!(SampleSpec::for_ratings(0).validate().is_err());
    }

    #[test]
    fn deterministic_math_matches_libm_closely() {
        let mut rng = Rng::stream(1, 2, 3);
        for _ in 0..20_000 {
            let x = det_exp(60.0 * rng.unit() - 30.0);
            let rel = (det_ln(x) - x.ln()).abs() / x.ln().abs().max(1.0);
            assert!(rel < 1e-15, "ln({x})");
            let y = 1400.0 * rng.unit() - 700.0;
            assert!((det_exp(y) - y.exp()).abs() <= 4e-16 * y.exp(), "exp({y})");
        }
        assert_eq!(det_ln(1.0), 0.0);
        assert_eq!(det_exp(0.0), 1.0);
        for y in [709.5, 709.78, -708.0, -740.0] {
            assert!((det_exp(y) - y.exp()).abs() <= 1e-15 * y.exp(), "exp({y})");
        }
        assert!(det_ln(f64::MIN_POSITIVE / 8.0).is_finite());
    }

    #[test]
    fn prng_streams_are_pinned() {
        // xoshiro256** reference: state [1, 2, 3, 4] gives 11520, 0, 1509978240, 1215971899390074240.
        let mut rng = Rng {
            s: [1, 2, 3, 4],
            spare_normal: None,
        };
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
        // Lemire draws stay in range and hit both ends.
        let mut rng = Rng::stream(42, 0, 0);
        let draws: Vec<u64> = (0..1000).map(|_| rng.below(3)).collect();
        assert!(draws.iter().all(|&d| d < 3) && draws.contains(&0) && draws.contains(&2));
        // Normal moments.
        let mut rng = Rng::stream(42, 1, 0);
        let xs: Vec<f64> = (0..40_000).map(|_| rng.normal()).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "{m} {v}");
    }

    fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// Fails whenever the generated bytes change (see the module invariant). If the change is
    /// intended, update the digest and say so wherever samples are consumed.
    #[test]
    fn golden_digest_is_pinned() {
        let r = render(&small());
        let mut h = 0xcbf2_9ce4_8422_2325;
        for file in [&r.ratings, &r.movies, &r.users] {
            h = fnv1a(file, h);
        }
        assert_eq!(h, 0xdc60_bbdd_c84b_b88e, "digest {h:#018x}");
    }

    /// Timing harness, run by hand:
    /// `cargo test --release -- --ignored --nocapture timing`
    #[test]
    #[ignore = "writes ~710 MB and takes seconds; run by hand"]
    fn timing_1m_and_25m() {
        for spec in [SampleSpec::default(), SampleSpec::for_ratings(25_000_000)] {
            let dir = TempDir::new("timing");
            let t = std::time::Instant::now();
            let s = write_sample(&spec, &dir.0).unwrap();
            let secs = t.elapsed().as_secs_f64();
            let bytes: u64 = s.files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
            println!(
                "{} ratings, {} users, {} items: {secs:.2} s, {:.1} MB",
                spec.ratings,
                spec.users,
                spec.items,
                bytes as f64 / 1e6
            );
        }
    }
}
