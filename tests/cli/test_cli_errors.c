/* SPDX-License-Identifier: MIT */
/*
 * test_cli_errors.c - the tandem binary of this build variant
 * (build/<variant>/tandem, beside build/<variant>/tests/cli/) refuses bad
 * option combinations of the gfn_to_pfn cache pages with a clear message
 * and exit status 2 (EXIT_USAGE), before it builds anything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tandem[PATH_MAX];

/* Run tandem with args (NULL-terminated); its exit status and the first
 * part of its stderr. */
static int run(char *err, size_t len, const char *const *args)
{
	const char *argv[32] = { tandem };
	int fds[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	for (size_t i = 0; args[i]; i++)
		argv[i + 1] = args[i];
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execv(tandem, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	while (n + 1 < len && (r = read(fds[0], err + n, len - 1 - n)) > 0)
		n += (size_t)r;
	err[n] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

#define REFUSED(phrase, ...) do {                                              \
	char _e[2048];                                                         \
	const char *const _a[] = { "run", __VA_ARGS__, NULL };                 \
	assert_int_equal(run(_e, sizeof(_e), _a), 2);                          \
	if (!strstr(_e, (phrase)))                                             \
		fail_msg("stderr lacks \"%s\": %s", (phrase), _e);             \
} while (0)

static void test_gpc_options_refused(void **state)
{
	(void)state;
	REFUSED("--gpc", "--gpc", "bogus");
	REFUSED("not a duration", "--clock-period", "1ns");
	REFUSED("must be 10us to 1s", "--clock-period", "0.000001");
	REFUSED("must be 10us to 1s", "--clock-period", "5");
	REFUSED("needs the clock", "--gpc", "runstate", "--clock-period", "1ms");
	REFUSED("needs a cache to break", "--gpc", "none", "--break=gpc-invalidate");
	REFUSED("gpc-request", "--gpc", "clock", "--break=gpc-request");
	REFUSED("no clock device", "--guest", "riscv", "--gpc", "clock");
	REFUSED("does not apply to --guest riscv", "--guest", "riscv", "--clock-period",
		"1ms");
	REFUSED("gva-sfence, gva-zap and gpc-request", "--guest", "riscv",
		"--break=gpc-invalidate");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpc_options_refused),
	};
	char *slash;

	(void)argc;
	/* build/<variant>/tests/cli/test_cli_errors -> build/<variant>/tandem */
	if (!realpath(argv[0], tandem))
		return 1;
	for (int i = 0; i < 3 && (slash = strrchr(tandem, '/')); i++)
		*slash = '\0';
	strncat(tandem, "/tandem", sizeof(tandem) - strlen(tandem) - 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
