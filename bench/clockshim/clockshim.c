/*
 * clockshim: LD_PRELOAD library for sipp. Debian's sipp reads its clock with
 * clock_gettime(CLOCK_MONOTONIC_COARSE / CLOCK_REALTIME_COARSE), which ticks once
 * per kernel jiffy (4 ms at HZ=250), so its response times come in 4 ms steps.
 * The shim turns the coarse clocks into their fine counterparts (vDSO, ~20 ns).
 * Built by bench/run.sh: gcc -O2 -shared -fPIC -o clockshim.so clockshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

int clock_gettime(clockid_t id, struct timespec *ts)
{
	static clock_gettime_fn real;
	if (!real)
		real = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
	if (id == CLOCK_MONOTONIC_COARSE)
		id = CLOCK_MONOTONIC;
	else if (id == CLOCK_REALTIME_COARSE)
		id = CLOCK_REALTIME;
	return real(id, ts);
}
