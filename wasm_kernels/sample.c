/* Token choice: argmax, a splitmix64 stream, and temperature / top-k / top-p / min-p sampling.
 * bn_sample never sorts the vocabulary: one pass computes p and a histogram over the exponent of
 * p, the histogram says which top buckets must hold the kept set, and only those candidates are
 * heap-sorted (O(n + c log c)); with no filter nothing is sorted. Masses are summed in double; the
 * draw walks the kept tokens in index order. temperature <= 0 consumes no random number. */
#include "bitnet.h"
#include "bn_math.h"

/* max of x ignoring nan (pmax(m, v) = m < v ? v : m never takes a nan); -inf if none */
static float max_ignoring_nan(const float *x, int n) {
    v128_t vm = wasm_f32x4_splat(-__builtin_inff());
    int i = 0;
    for (; i + 4 <= n; i += 4) vm = wasm_f32x4_pmax(vm, wasm_v128_load(x + i));
    float lanes[4], m = -__builtin_inff();
    wasm_v128_store(lanes, vm);
    for (int l = 0; l < 4; l++) m = m < lanes[l] ? lanes[l] : m;
    for (; i < n; i++) m = m < x[i] ? x[i] : m;
    return m;
}

int bn_argmax(const float *x, int n) {
    if (n <= 0) return -1;
    const float m = max_ignoring_nan(x, n);
    const v128_t vm = wasm_f32x4_splat(m);
    int i = 0;
    for (; i + 4 <= n; i += 4)
        if (wasm_v128_any_true(wasm_f32x4_eq(wasm_v128_load(x + i), vm))) break;
    for (; i < n; i++)
        if (x[i] == m) return i;
    return 0; /* all nan */
}

uint32_t bn_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* bucket b of p in [0, 1]: 0 holds p = 1, b in 1..62 holds [2^-b, 2^(1-b)), 63 the rest */
#define BUCKETS 64
static int bucket_of(float p) {
    int b = 127 - (int)(bn_f32_bits(p) >> 23);
    return b < 0 ? 0 : (b > BUCKETS - 1 ? BUCKETS - 1 : b);
}
static float bucket_floor(int b) { return b == BUCKETS - 1 ? 0.0f : bn_bits_f32((uint32_t)(127 - b) << 23); }

typedef struct {
    int top_k;                  /* 0: keep all */
    float top_p, min_p;
    int need_k, need_p, need_m; /* which filters are active */
} Filters;

/* p[i] = exp(logits[i] / T - max / T), nan -> 0; the max token gets exactly 1 */
static void probabilities(const float *logits, int n, float temperature, float zmax, float *p) {
    const v128_t vt = wasm_f32x4_splat(temperature), vmax = wasm_f32x4_splat(zmax), zero = wasm_f32x4_splat(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v128_t e = bn_expf4(wasm_f32x4_sub(wasm_f32x4_div(wasm_v128_load(logits + i), vt), vmax));
        wasm_v128_store(p + i, wasm_v128_bitselect(e, zero, wasm_f32x4_eq(e, e)));
    }
    for (; i < n; i++) {
        float e = bn_expf(logits[i] / temperature - zmax);
        p[i] = e == e ? e : 0.0f;
    }
}

/* The highest bucket b such that the buckets 0..b surely hold the kept set. top-p together with
 * top-k needs the whole top-k set (its mass renormalizes top-p), so only the count decides then. */
static int cutoff_bucket(const Filters *f, const int *count, const double *mass, double total) {
    const double p_target = (double)f->top_p * total * (1.0 + 0x1p-20); /* margin over summation order */
    int cum_count = 0;
    double cum_mass = 0.0;
    for (int b = 0; b < BUCKETS; b++) {
        cum_count += count[b];
        cum_mass += mass[b];
        if (f->need_k && cum_count >= f->top_k) return b;
        if (!f->need_k && f->need_p && cum_mass >= p_target) return b;
        if (f->need_m && !(f->need_k && f->need_p) && bucket_floor(b) <= f->min_p) return b;
    }
    return BUCKETS - 1;
}

/* a ranks after b: lower p, or equal p and higher index */
static int ranks_after(const float *p, int32_t a, int32_t b) { return p[a] < p[b] || (p[a] == p[b] && a > b); }

static void sift_down(int32_t *h, int root, int end, const float *p) {
    for (;;) {
        int child = 2 * root + 1;
        if (child >= end) return;
        if (child + 1 < end && ranks_after(p, h[child + 1], h[child])) child++;
        if (!ranks_after(p, h[child], h[root])) return;
        int32_t tmp = h[root];
        h[root] = h[child];
        h[child] = tmp;
        root = child;
    }
}

/* heap sort, best first: the heap's root is the candidate that ranks last */
static void sort_best_first(int32_t *h, int c, const float *p) {
    for (int i = c / 2 - 1; i >= 0; i--) sift_down(h, i, c, p);
    for (int end = c - 1; end > 0; end--) {
        int32_t tmp = h[0];
        h[0] = h[end];
        h[end] = tmp;
        sift_down(h, 0, end, p);
    }
}

/* how many of the sorted candidates idx[0..c) are kept */
static int kept_count(const Filters *f, const int32_t *idx, int c, const float *p, double total) {
    int keep = f->need_k && f->top_k < c ? f->top_k : c;
    if (f->need_p) {
        double k_mass = 0.0;
        if (f->need_k)
            for (int j = 0; j < keep; j++) k_mass += p[idx[j]];
        const double target = (double)f->top_p * (f->need_k ? k_mass : total);
        double cum = 0.0;
        for (int j = 0; j < keep; j++) {
            cum += p[idx[j]];
            if (cum >= target) { keep = j + 1; break; }
        }
    }
    if (f->need_m) {
        const float floor = f->min_p * p[idx[0]];
        for (int j = 1; j < keep; j++)
            if (p[idx[j]] < floor) { keep = j; break; }
    }
    return keep;
}

/* The kept set is a prefix of the best-first order: its last member decides membership. */
static int kept(const float *p, int32_t i, int32_t last) { return last < 0 || !ranks_after(p, i, last); }

/* Sorts the candidates that may be kept; returns the last kept token, or -1 when all are kept. */
static int32_t last_kept(const Filters *f, const float *p, int n, double total, int32_t *idx) {
    if (!(f->need_k || f->need_p || f->need_m)) return -1;
    int count[BUCKETS];
    double mass[BUCKETS];
    for (int b = 0; b < BUCKETS; b++) count[b] = 0, mass[b] = 0.0;
    for (int i = 0; i < n; i++) {
        int b = bucket_of(p[i]);
        count[b]++;
        mass[b] += p[i];
    }
    const int last_bucket = cutoff_bucket(f, count, mass, total);
    int c = 0;
    for (int i = 0; i < n; i++)
        if (bucket_of(p[i]) <= last_bucket) idx[c++] = i;
    sort_best_first(idx, c, p);
    return idx[kept_count(f, idx, c, p, total) - 1];
}

int bn_sample(const float *logits, int n, float temperature, int top_k, float top_p, float min_p, uint64_t *rng_state, float *scratch_p, int32_t *scratch_idx) {
    if (!(temperature > 0.0f) || n <= 0) return bn_argmax(logits, n);
    const float zmax = max_ignoring_nan(logits, n) / temperature;
    if (!bn_finite(zmax)) return bn_argmax(logits, n); /* +-inf dominates, or all nan */
    float *p = scratch_p;
    probabilities(logits, n, temperature, zmax, p);
    double total = 0.0;
    for (int i = 0; i < n; i++) total += p[i];

    const Filters f = { top_k, top_p, min_p, top_k > 0 && top_k < n, top_p < 1.0f, min_p > 0.0f };
    const int32_t last = last_kept(&f, p, n, total, scratch_idx);
    double kept_mass = 0.0;
    for (int i = 0; i < n; i++)
        if (kept(p, i, last)) kept_mass += p[i];
    const double target = (double)(bn_rng_next(rng_state) >> 8) * 0x1p-24 * kept_mass;
    double cum = 0.0;
    int chosen = last < 0 ? n - 1 : last; /* not reached: cum ends at kept_mass > target */
    for (int i = 0; i < n; i++)
        if (kept(p, i, last) && (cum += p[i]) > target) { chosen = i; break; }
    return chosen;
}
