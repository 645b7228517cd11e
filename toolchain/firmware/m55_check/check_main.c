/* check_main.c: the firmware check program's main() (Cortex-M55 under QEMU, output by semihosting).
 *
 * Decodes every palette table with the generated reference decoder and compares a CRC-32 of the
 * result with the host's; checks the model array's address alignment, that its size is the flash
 * the reports give, and its CRC-32. Prints one line per table, one for the model, then
 * "firmware check: N of M palette tables match"; returns 0 only when everything matched.
 */
#include <inttypes.h>
#include <stdio.h>

#include "check.h"

/* CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), bit by bit: small, not fast. */
static uint32_t crc32_of(const uint8_t *p, uint32_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    uint32_t i, k;
    for (i = 0; i < n; ++i) {
        crc ^= p[i];
        for (k = 0; k < 8; ++k) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

int main(void)
{
    uint32_t i, matched = 0;
    uintptr_t address = (uintptr_t)check_model;
    uint32_t model_bytes = *check_model_size;
    uint32_t model_crc = crc32_of(check_model, model_bytes);
    int model_ok;

    for (i = 0; i < check_table_count; ++i) {
        const check_table_t *t = &check_tables[i];
        uint32_t n = t->count(t->index);
        int status = -3; /* -3: the generated table's size is not the model tensor's */
        uint32_t crc = 0;
        if (n == t->element_count && n <= check_buffer_bytes) {
            status = t->decode(t->index, check_buffer, n);
        }
        if (status == 0) {
            crc = crc32_of((const uint8_t *)check_buffer, n);
        }
        if (status == 0 && crc == t->crc32) {
            ++matched;
        }
        printf("table %" PRIu32 ": %" PRIu32 " values, decode %d, crc32 %08" PRIx32 ", host %08" PRIx32 ": %s\n",
               i, n, status, crc, t->crc32, (status == 0 && crc == t->crc32) ? "match" : "MISMATCH");
    }
    model_ok = address % check_model_alignment == 0 && model_bytes == check_reported_flash_bytes &&
               model_crc == check_model_crc32;
    printf("model: %" PRIu32 " bytes at 0x%08" PRIxPTR ", alignment %" PRIu32 ", reported flash %" PRIu32
           " bytes, crc32 %08" PRIx32 ", host %08" PRIx32 ": %s\n",
           model_bytes, address, check_model_alignment, check_reported_flash_bytes, model_crc,
           check_model_crc32, model_ok ? "ok" : "MISMATCH");
    printf("firmware check: %" PRIu32 " of %" PRIu32 " palette tables match\n", matched, check_table_count);
    return (matched == check_table_count && model_ok) ? 0 : 1;
}
