/* guests/kernel: the system-call ABI shared by the kernel and user code.
 * ecall from U with a7 = number, arguments in a0..a5; result in a0
 * (wait also returns the status in a1). */
#ifndef KABI_H
#define KABI_H

#define SYS_EXIT      1   /* exit(code)                          */
#define SYS_FORK      2   /* -> child pid in parent, 0 in child  */
#define SYS_WAIT      3   /* -> a0 pid (-1: no child), a1 status */
#define SYS_YIELD     4
#define SYS_SBRK      5   /* sbrk(delta) -> old break, -1        */
#define SYS_MMAP      6   /* mmap(addr, len, prot) -> addr, -1   */
#define SYS_MUNMAP    7   /* munmap(addr, len) -> 0, -1          */
#define SYS_MPROTECT  8   /* mprotect(addr, len, prot) -> 0, -1  */
#define SYS_WRITE     9   /* write(buf, len) to the console      */
#define SYS_GETPID   10
#define SYS_INFO     11   /* info(INFO_x) -> value               */
#define SYS_COUNT    12   /* count(CNT_x, n): add to a kernel counter */

#define PROT_READ   1
#define PROT_WRITE  2
#define PROT_EXEC   4

/* SYS_INFO keys: the workload's parameters, from /chosen/bootargs. */
#define INFO_VM        0
#define INFO_ROUNDS    1
#define INFO_PAGES     2
#define INFO_LINEAGES  3
#define INFO_DEPTH     4
#define INFO_GENS      5
#define INFO_SECS      6
#define INFO_TIME_MS   7   /* milliseconds since boot */
#define INFO_NHARTS    8
#define INFO_VERBOSE   9

/* SYS_COUNT keys. */
#define CNT_ROUND    0
#define CNT_FAILURE  1
#define CNT_PROBE    2

/* wait status: exit code in the low 8 bits, or KILLED | scause. */
#define WSTAT_KILLED 0x100

/* User address-space layout (Sv39, all below 0x8000_0000, root
 * entries 0 and 1; entries 2.. hold the kernel's global gigapages). */
#define USER_BASE     0x10000UL
#define MMAP_BASE     0x40000000UL
#define MMAP_END      0x7F000000UL
#define USTACK_TOP    0x7FFFF000UL
#define USTACK_PAGES  4

#endif
