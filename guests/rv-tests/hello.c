/* hello - the smoke test: every hart says hello, hart 0 waits for all. */
#include "rt.h"

static volatile unsigned int arrived;

void secondary_main(unsigned long hart)
{
	printf("Hello from hart %lu\n", hart);
	__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
	park();
}

int main(void)
{
	unsigned int n = rt_nharts();
	printf("Hello from hart %lu\n", hartid());
	uint64_t t0 = mtime();
	while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) != n - 1) {
		if (mtime() - t0 > 20 * TIMEBASE_HZ) {
			printf("FAIL only %u of %u harts arrived\n", arrived + 1, n);
			check_failures++;
			break;
		}
	}
	printf("%u hart(s), DTB at 0x%lx\n", n, rt_dtb);
	return 0;
}
