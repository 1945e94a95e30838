/* The thread pool: in the threaded wasm builds (BN_THREADS=1) the leader, the thread running
 * bn_model_forward, shares one memory with threads-1 followers, each looping in bn_thread_main in
 * its own Web Worker. Per op the leader publishes a job, wakes the followers, and every thread
 * claims chunks of it until none are left; the leader then waits for the last ones (spinning
 * first: jobs come every few microseconds while decoding). Claiming, not fixed shares, keeps a
 * thread the OS runs less often (a busy machine, a slower core) from holding up the others.
 * Chunks are whole row tiles, vocabulary rows or heads, so every output is computed by the same
 * code as on one thread. Other builds run the whole job on the caller, in one chunk. */
#include "bitnet.h"
#include "bitlinear.h"

#define VOCAB_GRAIN BN_TABLE_TILE_ROWS  /* the int8 and 7-bit heads' tiles (the f16 head's four rows divide them) */
#define CHUNKS_PER_THREAD 16  /* of the head's jobs: more evens out the threads' finish */
#define SPINS 20000      /* atomic loads before sleeping in memory.atomic.wait32 */
/* A job's work in ternary multiply-adds (~0.02 ns each at one thread): below MIN_SHARED_WORK (~20 us) a handoff costs
 * more than it saves (with 1 << 17 the 2 M demo model's 5 shared jobs a token cost ~40 us each on 2 threads, likely
 * wake-ups of followers that had stopped spinning between them). One position of one attention head per head_dim (q.k,
 * p.v, their f16 conversions, the exp) costs about as much as ATTENTION_COST of them (0.45 against 0.022 ns per
 * multiply-add on the 700 M shape). */
#define MIN_SHARED_WORK (1 << 20)
#define ATTENTION_COST 32LL

#define MAX_PARTS 3  /* linears of one job: q, k, v */

/* One linear of a job, its output rows at [first, first + out) of the job's count */
typedef struct { const uint8_t *w; float wscale; float *y; int out, first; } Part;

typedef struct Job Job;
struct Job {
    void (*run)(const Job *job, int begin, int end, int thread);  /* one chunk: [begin, end) of count */
    int count, grain, chunks_per_thread, chunks;
    union {
        struct { const bn_layout_traits *layout; const int8_t *q; const float *scale; uint8_t *scratch; int in, n, parts; Part part[MAX_PARTS]; } linear;
        struct { const void *E; const float *row_scale; const void *x; const float *xscale; float *logits; int n, vocab, dim; } head;
        struct { const float *q; const void *k, *v; float *out, *scratch; int n, heads, kv_heads, head_dim, context, pos0; } attention;  /* k, v: f16 or f32 */
    };
};

/* In shared memory: every instance of the threaded module sees the same pool. */
static struct {
    int threads;
    int generation;  /* bumped by the leader for each job; followers sleep on it */
    int pending;     /* followers still running the current job; the leader sleeps on it */
    int next_chunk;  /* the next chunk of the job to claim */
    Job job;
} pool = { .threads = 1 };

int bn_threads_init(int threads) {
#if BN_THREADS
    const int most = BN_MAX_THREADS;
#else
    const int most = 1;
#endif
    if (threads < 1 || threads > most) return 0;
    pool.threads = threads;
    return threads;
}

/* chunk c of [0, count): whole grains, spread as evenly as they go */
static void run_chunk(const Job *job, int c, int thread) {
    const long long units = (job->count + job->grain - 1) / job->grain;
    const int begin = (int)(units * c / job->chunks) * job->grain;
    const int end = (int)(units * (c + 1) / job->chunks) * job->grain;
    if (begin < end && begin < job->count) job->run(job, begin, end < job->count ? end : job->count, thread);
}

#if BN_THREADS
static int settled(int *value, int busy) { return __atomic_load_n(value, __ATOMIC_ACQUIRE) != busy; }

/* returns once *value != busy */
static void await_change(int *value, int busy) {
    for (int spins = 0; !settled(value, busy); spins++)
        if (spins >= SPINS) __builtin_wasm_memory_atomic_wait32(value, busy, -1);
}

static void claim_chunks(const Job *job, int thread) {
    for (int c; (c = __atomic_fetch_add(&pool.next_chunk, 1, __ATOMIC_RELAXED)) < job->chunks;) run_chunk(job, c, thread);
}

void bn_thread_main(int index) {
    for (int seen = 0;; seen++) {
        await_change(&pool.generation, seen);
        claim_chunks(&pool.job, index);
        if (__atomic_sub_fetch(&pool.pending, 1, __ATOMIC_ACQ_REL) == 0) __builtin_wasm_memory_atomic_notify(&pool.pending, 1);
    }
}
#else
void bn_thread_main(int index) {}
#endif

/* work: the job's multiply-adds, roughly */
static void dispatch(Job job, long long work) {
    job.chunks = 1;
#if BN_THREADS
    const int threads = pool.threads;
    if (threads > 1 && work >= MIN_SHARED_WORK) {
        job.chunks = threads * (job.chunks_per_thread ? job.chunks_per_thread : CHUNKS_PER_THREAD);
        pool.job = job;
        __atomic_store_n(&pool.next_chunk, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pool.pending, threads - 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&pool.generation, 1, __ATOMIC_ACQ_REL);
        __builtin_wasm_memory_atomic_notify(&pool.generation, threads - 1);
        claim_chunks(&job, 0);
        for (int left; (left = __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE)) != 0;)
            await_change(&pool.pending, left);
        return;
    }
#endif
    run_chunk(&job, 0, 0);
}

/* the rows of every part within [begin, end); a slice of scratch per thread: threads never share working memory */
static void linear_rows(const Job *j, int begin, int end, int thread) {
    uint8_t *scratch = j->linear.scratch ? j->linear.scratch + (size_t)thread * j->linear.layout->scratch_bytes(j->linear.in) : 0;
    for (int p = 0; p < j->linear.parts; p++) {
        const Part *part = &j->linear.part[p];
        const int o0 = begin > part->first ? begin - part->first : 0, o1 = end - part->first < part->out ? end - part->first : part->out;
        if (o0 < o1) j->linear.layout->rows(part->w, part->wscale, j->linear.q, j->linear.scale, part->y, scratch, part->out, j->linear.in, j->linear.n, o0, o1);
    }
}

static void head_f16_rows(const Job *j, int begin, int end, int thread) {
    bn_head_f16_rows(j->head.E, j->head.x, j->head.logits, j->head.n, j->head.vocab, j->head.dim, begin, end);
}

static void head_q8_rows(const Job *j, int begin, int end, int thread) {
    bn_head_q8_rows(j->head.E, j->head.row_scale, j->head.x, j->head.xscale, j->head.logits, j->head.n, j->head.vocab, j->head.dim, begin, end);
}

static void head_q7_rows(const Job *j, int begin, int end, int thread) {
    bn_head_q7_rows(j->head.E, j->head.row_scale, j->head.x, j->head.xscale, j->head.logits, j->head.n, j->head.vocab, j->head.dim, begin, end);
}

static void head_q4_rows(const Job *j, int begin, int end, int thread) {
    bn_head_q4_rows(j->head.E, j->head.row_scale, j->head.x, j->head.xscale, j->head.logits, j->head.n, j->head.vocab, j->head.dim, begin, end);
}

static float *attention_scratch(const Job *j, int thread) {
    return j->attention.scratch + (size_t)thread * bn_attention_scratch(j->attention.heads, j->attention.kv_heads, j->attention.head_dim, j->attention.pos0 + j->attention.n);
}

static void attention_heads(const Job *j, int begin, int end, int thread) {
    bn_attention_heads(j->attention.q, j->attention.k, j->attention.v, j->attention.out, attention_scratch(j, thread),
                       j->attention.n, j->attention.heads, j->attention.kv_heads, j->attention.head_dim, j->attention.context, j->attention.pos0, begin, end);
}

static void attention_heads_f32(const Job *j, int begin, int end, int thread) {
    bn_attention_f32_heads(j->attention.q, j->attention.k, j->attention.v, j->attention.out, attention_scratch(j, thread),
                           j->attention.n, j->attention.heads, j->attention.kv_heads, j->attention.head_dim, j->attention.context, j->attention.pos0, begin, end);
}

/* Linears that read the same activations as one job (one handoff to the threads instead of one
 * per linear): their rows end to end, each part starting at a whole tile, so that every chunk
 * holds whole tiles of each part and each row is computed as by the part's own call. */
static void linears_parallel(int layout, int parts, const Part *part, const int8_t *q, const float *scale, uint8_t *scratch, int in, int n) {
    if (!bn_layout_valid(layout)) return;
    const bn_layout_traits *traits = &BN_LAYOUT_TRAITS[layout];
    Job job = { .run = linear_rows, .grain = traits->tile_rows, .chunks_per_thread = traits->chunks_per_thread, .linear = { .layout = traits, .q = q, .scale = scale, .scratch = scratch, .in = in, .n = n, .parts = parts } };
    long long work = 0;
    for (int p = 0; p < parts; p++) {
        job.linear.part[p] = part[p];
        job.linear.part[p].first = job.count;
        job.count += (part[p].out + traits->tile_rows - 1) / traits->tile_rows * traits->tile_rows;
        work += (long long)part[p].out * in * n;
    }
    dispatch(job, work);
}

void bn_bitlinear_parallel(int layout, const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in, int n) {
    linears_parallel(layout, 1, (Part[]){ { .w = w, .wscale = wscale, .y = y, .out = out } }, q, scale, scratch, in, n);
}

void bn_bitlinear2_parallel(int layout, const uint8_t *w0, float wscale0, float *y0, int out0, const uint8_t *w1, float wscale1, float *y1, int out1,
                            const int8_t *q, const float *scale, uint8_t *scratch, int in, int n) {
    linears_parallel(layout, 2, (Part[]){ { .w = w0, .wscale = wscale0, .y = y0, .out = out0 }, { .w = w1, .wscale = wscale1, .y = y1, .out = out1 } }, q, scale, scratch, in, n);
}

void bn_bitlinear3_parallel(int layout, const uint8_t *w0, float wscale0, float *y0, int out0, const uint8_t *w1, float wscale1, float *y1, int out1,
                            const uint8_t *w2, float wscale2, float *y2, int out2, const int8_t *q, const float *scale, uint8_t *scratch, int in, int n) {
    linears_parallel(layout, 3, (Part[]){ { .w = w0, .wscale = wscale0, .y = y0, .out = out0 }, { .w = w1, .wscale = wscale1, .y = y1, .out = out1 }, { .w = w2, .wscale = wscale2, .y = y2, .out = out2 } }, q, scale, scratch, in, n);
}

void bn_head_f16_parallel(const uint16_t *E, const float *x, float *logits, int n, int vocab, int dim) {
    dispatch((Job){ .run = head_f16_rows, .count = vocab, .grain = VOCAB_GRAIN, .head = { E, 0, x, 0, logits, n, vocab, dim } }, (long long)vocab * dim * n);
}

void bn_head_q8_parallel(const int8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    dispatch((Job){ .run = head_q8_rows, .count = vocab, .grain = VOCAB_GRAIN, .head = { E, row_scale, xq, xscale, logits, n, vocab, dim } }, (long long)vocab * dim * n);
}

void bn_head_q7_parallel(const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    dispatch((Job){ .run = head_q7_rows, .count = vocab, .grain = VOCAB_GRAIN, .head = { E, row_scale, xq, xscale, logits, n, vocab, dim } }, (long long)vocab * dim * n);
}

void bn_head_q4_parallel(const uint8_t *E, const float *group_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    dispatch((Job){ .run = head_q4_rows, .count = vocab, .grain = VOCAB_GRAIN, .head = { E, group_scale, xq, xscale, logits, n, vocab, dim } }, (long long)vocab * dim * n);
}

/* Attention: one range of heads per thread, a fixed share, cut anywhere. Claimed whole groups of query heads
 * (one kv head each) left a thread 3/5 of 2B-4T's 5; a group cut in two converts its cache rows on both sides.
 * run: the f16 or the f32 cache's heads. */
static void attention_parallel(void (*run)(const Job *, int, int, int), const float *q, const void *k_cache, const void *v_cache, float *out, float *scratch,
                               int n, int heads, int kv_heads, int head_dim, int context, int pos0) {
    if (!bn_kv_rows_fit(n, kv_heads, head_dim, context, pos0)) return;  /* as bn_attention: nothing to do */
    dispatch((Job){ .run = run, .count = heads, .grain = 1, .chunks_per_thread = 1, .attention = { q, k_cache, v_cache, out, scratch, n, heads, kv_heads, head_dim, context, pos0 } },
             ATTENTION_COST * heads * head_dim * (pos0 + n) * n);
}

void bn_attention_parallel(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int context, int pos0) {
    attention_parallel(attention_heads, q, k_cache, v_cache, out, scratch, n, heads, kv_heads, head_dim, context, pos0);
}

void bn_attention_f32_parallel(const float *q, const float *k_cache, const float *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int context, int pos0) {
    attention_parallel(attention_heads_f32, q, k_cache, v_cache, out, scratch, n, heads, kv_heads, head_dim, context, pos0);
}
