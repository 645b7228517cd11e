/* check.h: what the firmware check program compares on the Cortex-M55.
 *
 * check_main.c is fixed; check_expected.c is written per run by `toolchain firmware-check` from
 * the host's own reading of the models: for each generated palette table, the number of weights
 * and the CRC-32 (zlib's) of the int8 weights the model holds; for the model array, the size the
 * reports give as flash (the compiled model file) and its CRC-32.
 */
#ifndef FIRMWARE_CHECK_H
#define FIRMWARE_CHECK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t index;                                        /* the table's index in its tensors[] array */
    uint32_t element_count;                                /* weights in the tensor, per the host */
    uint32_t crc32;                                        /* of those int8 weights, per the host */
    uint32_t (*count)(uint32_t index);                     /* the table's element_count, as generated */
    int (*decode)(uint32_t index, int8_t *out, size_t n);  /* the generated reference decoder */
} check_table_t;

extern const check_table_t check_tables[];
extern const uint32_t check_table_count;
extern int8_t check_buffer[];                 /* decode target: as large as the largest table */
extern const uint32_t check_buffer_bytes;

extern const uint8_t *const check_model;      /* the generated model array */
extern const uint32_t *const check_model_size; /* its size variable, <name>_model_size_bytes */
extern const uint32_t check_reported_flash_bytes; /* the flash the reports give (compiled model file) */
extern const uint32_t check_model_crc32;      /* of the compiled model file, per the host */
extern const uint32_t check_model_alignment;  /* what the NPU driver needs (16 bytes) */

#endif /* FIRMWARE_CHECK_H */
