/* classify.c: the smallest app over liblowbit-runtime's C API (plain C, links only it).
 *   classify MODEL IMAGE...
 * prints one line per image: the image path, a colon, then its 5 best classes as NAME PROBABILITY
 * pairs, best first: the text lines of `lowbit infer --model MODEL IMAGE...`, bit for bit.
 * Build against the installed package:
 *   cc classify.c $(pkg-config --cflags --libs lowbit-runtime) -o classify
 */
#include <lowbit_runtime.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL IMAGE...\n", argv[0]);
    return 2;
  }
  lowbit_model* model = NULL;
  if (lowbit_model_load(argv[1], NULL, &model) != LOWBIT_OK) {
    fprintf(stderr, "error: %s\n", lowbit_last_error());
    return 1;
  }
  int status = 0;
  for (int i = 2; i < argc; ++i) {
    lowbit_class_score top[5];
    int64_t count = 0;
    if (lowbit_classify_file(model, argv[i], 5, top, &count) != LOWBIT_OK) {
      fprintf(stderr, "error: %s\n", lowbit_last_error());
      status = 1;
      continue;
    }
    printf("%s:", argv[i]);
    for (int64_t k = 0; k < count; ++k) printf("  %s %.3f", top[k].name, top[k].probability);
    printf("\n");
  }
  lowbit_model_free(model);
  return status;
}
