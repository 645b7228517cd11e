/* startup.c: reset and fault handlers of the firmware check program (Cortex-M55, QEMU mps3-an547).
 *
 * Bare metal, no CMSIS: copy .data, clear .bss, open the semihosting streams (printf goes to
 * the host through the debugger interface QEMU emulates), run main() and hand its status to
 * exit(), which semihosting turns into QEMU's exit status. Part of toolchain firmware-check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Symbols of link.ld. The stack top is declared as a function so that the vector table holds
 * function pointers only (ISO C has no conversion between object and function pointers). */
extern uint8_t __data_load__[], __data_start__[], __data_end__[], __bss_start__[], __bss_end__[];
extern void __stack_top__(void);

extern void initialise_monitor_handles(void); /* newlib's rdimon: semihosting stdin/stdout */
extern int main(void);

/* newlib's exit() calls these; no constructors run here (started with -nostartfiles). */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

void Reset_Handler(void);
void Fault_Handler(void);

void Reset_Handler(void)
{
    memcpy(__data_start__, __data_load__, (size_t)(__data_end__ - __data_start__));
    memset(__bss_start__, 0, (size_t)(__bss_end__ - __bss_start__));
    initialise_monitor_handles();
    exit(main());
}

/* A fault (bad address, undefined instruction) ends the run with a status main() never returns. */
void Fault_Handler(void)
{
    exit(100);
}

/* Initial stack pointer, reset, then NMI, HardFault, MemManage, BusFault, UsageFault, SecureFault. */
__attribute__((section(".vectors"), used))
void (*const vector_table[8])(void) = {
    __stack_top__, Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
};
