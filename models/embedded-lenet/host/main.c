/* Host harness for the embedded-lenet static library: what a firmware's main
 * loop would do, run on the host. Reads N images (784 little-endian f32
 * each) and N labels (u8), prints for each image the baked net's class and
 * logits, then trains the RAM copy on the first STEPS images and prints each
 * loss and the trained copy's logits for every image.
 *
 * usage: harness IMAGES LABELS N STEPS LR
 *        harness fixture PARAMS IMAGES N   (load parameters, print logits) */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

uint32_t lenet_classify(const float *image, float *logits);
float lenet_train_step(const float *image, uint32_t label, float lr);
uint32_t lenet_trainable_classify(const float *image, float *logits);
void lenet_memory(uint32_t *infer_scratch, uint32_t *train_scratch, uint32_t *params);
void lenet_load_params(const float *params);

#define PARAM_COUNT 61706

static float *read_floats(const char *path, size_t count) {
    float *out = malloc(sizeof(float) * count);
    FILE *f = fopen(path, "rb");
    if (!out || !f || fread(out, sizeof(float), count, f) != count) return NULL;
    fclose(f);
    return out;
}

static void print_logits(const char *tag, int i, uint32_t cls, const float *logits) {
    printf("%s %d %u", tag, i, cls);
    for (int k = 0; k < 10; k++) printf(" %.9g", logits[k]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc == 5 && argv[1][0] == 'f') {
        int n = atoi(argv[4]);
        float *params = read_floats(argv[2], PARAM_COUNT), *images = read_floats(argv[3], 784 * (size_t)n);
        if (!params || !images) return 1;
        lenet_load_params(params);
        float logits[10];
        for (int i = 0; i < n; i++) print_logits("fixture", i, lenet_trainable_classify(images + 784 * i, logits), logits);
        return 0;
    }
    if (argc != 6) {
        fprintf(stderr, "usage: %s IMAGES LABELS N STEPS LR\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]), steps = atoi(argv[4]);
    float lr = (float)atof(argv[5]);
    float *images = malloc(sizeof(float) * 784 * (size_t)n);
    unsigned char *labels = malloc((size_t)n);
    FILE *fi = fopen(argv[1], "rb"), *fl = fopen(argv[2], "rb");
    if (!images || !labels || !fi || !fl) return 1;
    if (fread(images, sizeof(float), 784 * (size_t)n, fi) != 784 * (size_t)n) return 1;
    if (fread(labels, 1, (size_t)n, fl) != (size_t)n) return 1;

    uint32_t infer, train, params;
    lenet_memory(&infer, &train, &params);
    printf("memory %u %u %u\n", infer, train, params);

    float logits[10];
    for (int i = 0; i < n; i++) print_logits("baked", i, lenet_classify(images + 784 * i, logits), logits);
    for (int s = 0; s < steps; s++) printf("loss %d %.9g\n", s, lenet_train_step(images + 784 * (s % n), labels[s % n], lr));
    for (int i = 0; i < n; i++) print_logits("trained", i, lenet_trainable_classify(images + 784 * i, logits), logits);
    return 0;
}
