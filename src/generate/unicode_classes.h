/* The Unicode character classes GPT-2's pre-tokenizer regex uses: letters (\p{L}), numbers
 * (\p{N}) and whitespace (\s as Oniguruma, which Hugging Face tokenizers runs the regex on,
 * defines it for Unicode: U+0009-000D, U+0085 and the categories Zs, Zl, Zp); and lowercasing
 * for the Lowercase normalizer. */
#ifndef INFERD_GENERATE_UNICODE_CLASSES_H
#define INFERD_GENERATE_UNICODE_CLASSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct unicode_range {
  uint32_t first, last;
} unicode_range;

/* Generated (unicode_classes.c, by unicode_classes.py): sorted, disjoint ranges. */
extern const unicode_range unicode_letters[];
extern const size_t unicode_letters_count;
extern const unicode_range unicode_numbers[];
extern const size_t unicode_numbers_count;

/* A lowercase mapping: cp lowers to lower[0] (and lower[1] when not 0: U+0130 gives two). */
typedef struct unicode_lower {
  uint32_t cp, lower[2];
} unicode_lower;
extern const unicode_lower unicode_lowercase[];
extern const size_t unicode_lowercase_count;

typedef enum { UNICODE_SPACE, UNICODE_LETTER, UNICODE_NUMBER, UNICODE_OTHER } unicode_class;

unicode_class unicode_class_of(uint32_t cp);
/* The lowercase of cp into out[2]; returns how many code points (1 or 2). */
size_t unicode_to_lower(uint32_t cp, uint32_t out[2]);

#endif
