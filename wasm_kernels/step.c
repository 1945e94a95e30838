/* One generation step, the same for every host: penalize the logits for the tokens already in
 * the context, sample, store the token at its position and say whether the generation ends there.
 * The generated forward.c wraps it as bn_model_step, which first runs the token the step before chose. */
#include "bitnet.h"
#include "bn_math.h"

static int is_stop_token(const int32_t *step, int32_t token) {
    for (int i = 0; i < BN_MAX_STOP_TOKENS; i++)
        if (step[BN_STEP_STOP_TOKENS + i] == token) return 1;
    return 0;
}

static int all_finite(const float *x, int n) {
    for (int i = 0; i < n; i++)
        if (!bn_finite(x[i])) return 0;
    return 1;
}

void bn_penalize(float *logits, int n, const int32_t *history, int n_history, float repetition, float presence, float frequency, int32_t *counts) {
    if (repetition == 1.0f && presence == 0.0f && frequency == 0.0f) return;
    for (int v = 0; v < n; v++) counts[v] = 0;
    for (int i = 0; i < n_history; i++)
        if (history[i] >= 0 && history[i] < n) counts[history[i]]++;
    for (int i = 0; i < n_history; i++) {
        const int32_t v = history[i];
        if (v < 0 || v >= n || counts[v] == 0) continue;
        float l = logits[v];
        if (repetition != 1.0f) l = l > 0.0f ? l / repetition : l * repetition;
        logits[v] = l - ((float)counts[v] * frequency + presence);
        counts[v] = 0; /* each distinct token once */
    }
}

int bn_step_arguments_valid(int n, int context, int position, int generated, int max_new_tokens) {
    return n >= 1 && position >= 1 && position <= context && generated >= 0 && generated < max_new_tokens;
}

int bn_generate_step(float *logits, int n, int32_t *tokens, int context, int position, int generated, int max_new_tokens, int32_t *step,
                     float temperature, int top_k, float top_p, float min_p, float repetition, float presence, float frequency,
                     uint64_t *rng_state, float *scratch_p, int32_t *scratch_idx) {
    if (!bn_step_arguments_valid(n, context, position, generated, max_new_tokens)) return BN_STEP_BAD_ARGUMENT;
    if (!all_finite(logits, n)) return BN_STEP_BAD_LOGITS;
    bn_penalize(logits, n, tokens, position, repetition, presence, frequency, scratch_idx);
    const int32_t token = bn_sample(logits, n, temperature, top_k, top_p, min_p, rng_state, scratch_p, scratch_idx);
    step[BN_STEP_TOKEN] = token;
    if (position < context) tokens[position] = token;
    if (is_stop_token(step, token)) return BN_STEP_EOS;
    if (generated + 1 >= max_new_tokens) return BN_STEP_LENGTH;
    if (position >= context) return BN_STEP_CONTEXT; /* chosen, but no position left to run it */
    return BN_STEP_CONTINUE;
}
