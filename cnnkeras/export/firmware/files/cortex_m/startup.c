// Minimal bare-metal start-up for the emulated Arm boards the package's Makefile targets (QEMU mps2/mps3).
// For a real board use the vendor's start-up file and linker script instead: main.cc needs nothing from here.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t __stack_top;
extern uint8_t __data_load[], __data_start[], __data_end[], __bss_start__[], __bss_end__[];
extern int main(void);
extern void __libc_init_array(void);
extern void initialise_monitor_handles(void);  // newlib's semihosting (rdimon): printf and exit go to the host

void Reset_Handler(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
  // CP10/CP11 full access: the FPU (and Helium/MVE, which shares it) traps until enabled.
  *(volatile uint32_t*)0xE000ED88 |= (0xFu << 20);
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  memcpy(__data_start, __data_load, (size_t)(__data_end - __data_start));
  memset(__bss_start__, 0, (size_t)(__bss_end__ - __bss_start__));
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

static void Fault_Handler(void) {
  printf("cnnkeras: CPU fault (HardFault/MemManage/BusFault/UsageFault)\n");
  exit(134);
}

static void Default_Handler(void) {
  printf("cnnkeras: unexpected interrupt\n");
  exit(135);
}

__attribute__((section(".vectors"), used)) void (*const g_vectors[16])(void) = {
    (void (*)(void))(&__stack_top), Reset_Handler, Default_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, Default_Handler,
};
