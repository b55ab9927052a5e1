/*
 * heap-host: runs one script on an XS machine with the heap sizes given on the command line and lets the
 * script read the machine's own memory counters. Used by scripts/xs-heap.mjs (the ESP32 memory gate); it is
 * compiled at test time against the XS engine sources that ship in the @agoric/xsnap npm package, with that
 * package's platform glue (timers, promise jobs, the run loop, fxAbort and the capped allocator).
 *
 *   heap-host [-c initialChunkBytes] [-C incrementalChunkBytes] [-h initialSlots] [-H incrementalSlots]
 *             [-k stackSlots] [-K markStackSlots] [-g growthCapBytes] script.js
 *
 * Globals for the script:
 *   print(...values)      one line on stdout
 *   gc()                  a full (compacting) collection
 *   setImmediate(fn)      runs fn from the loop after the pending promise jobs
 *   performance.now()     milliseconds
 *   heapMark()            starts the measured part of the run. With -K: from now on the stack holds at most
 *                         what a device's stack of markStackSlots slots leaves above XS's own resting use
 *                         (its intrinsics live on the XS stack), counted above the caller's frame; deeper is
 *                         "stack overflow". (A bundle's top level needs more stack than a device's preloaded
 *                         modules, so the load itself runs with -k.) Paints the unused stack for the peak and,
 *                         with -g, caps the machine's allocations at what it holds now + growthCapBytes:
 *                         beyond that the next chunk or slot growth aborts the run with "memory full".
 *   heapStats()           { chunks, chunksReserved, slots, slotsReserved, slotBytes, stackSlots, stackPeak,
 *                           stackRest, stackMark, allocated, limit }: live chunk bytes and slots as of the last
 *                         collection (plus what was allocated since), the heap's reservation (XS grows it only
 *                         when a collection leaves too little free), the size of one slot here; the stack's
 *                         size, its deepest use since heapMark() as a device would see it (XS's resting use plus
 *                         what was used above the caller of heapMark()), XS's resting use and the depth at
 *                         heapMark(), in slots; the platform allocator's running total and cap in bytes
 *
 * Exit status: 0 when the script and its jobs ran to the end; 2 for a usage or file error; otherwise the XS
 * abort status (memory full, stack overflow, unhandled exception), with a line "heap-host: XS abort: ..." on
 * stderr.
 */
#include "xsAll.h"
#include "xsScript.h"
#include "xs.h"
#include "xsnap.h"

extern void fxRunProgramFile(txMachine* the, txString path);
extern void fxRunLoop(txMachine* the);
extern void fxSetTimer(txMachine* the, txNumber interval, txBoolean repeat);

/* A byte that a slot pushed on the XS stack is very unlikely to consist of, all sixteen or thirty-two times. */
#define STACK_PAINT 0xA5

static size_t gGrowthCap = 0;
static txSlot* gPaintedTop = NULL;
static txSize gFlowStack = 0;
static txSlot* gOriginalBottom = NULL;
/* Stack depths in slots: XS's own when the machine is idle, and the script's when it called heapMark(). */
static txSize gRestDepth = 0;
static txSize gMarkDepth = 0;

static void host_print(txMachine* the)
{
	txInteger c = xsToInteger(xsArgc), i;
	for (i = 0; i < c; i++) {
		if (i)
			fputc(' ', stdout);
		fputs(xsToString(xsArg(i)), stdout);
	}
	fputc('\n', stdout);
	fflush(stdout);
}

static void host_gc(txMachine* the)
{
	xsCollectGarbage();
}

static void host_setImmediate(txMachine* the)
{
	fxSetTimer(the, 0, 0);
}

static void host_now(txMachine* the)
{
	c_timeval tv;
	c_gettimeofday(&tv, NULL);
	xsResult = xsNumber((double)(tv.tv_sec) * 1000.0 + (double)(tv.tv_usec) / 1000.0);
}

/* Paints the stack below the current top; the deepest slot written since then is the stack peak. */
static void host_heapMark(txMachine* the)
{
	txSlot* top;
	gMarkDepth = (txSize)(the->stackTop - the->stack);
	if (gFlowStack && gOriginalBottom == NULL) {
		/*
		 * From here on the flows get what a device's stack leaves above XS's own resting use (its intrinsics):
		 * gFlowStack - gRestDepth slots above the caller's frame. A deeper use aborts with "stack overflow".
		 */
		txSlot* bottom = the->stack - (gFlowStack - gRestDepth);
		if (gFlowStack > gRestDepth && bottom > the->stackBottom) {
			gOriginalBottom = the->stackBottom;
			the->stackBottom = bottom;
		}
		else
			xsRangeError("heapMark: the stack cannot give %d slots here", (int)gFlowStack);
	}
	top = the->stack - 8;
	if (top > the->stackBottom) {
		c_memset(the->stackBottom, STACK_PAINT, (size_t)((txByte*)top - (txByte*)the->stackBottom));
		gPaintedTop = top;
	}
	if (gGrowthCap)
		the->allocationLimit = the->allocatedSpace + gGrowthCap;
}

/*
 * The XS stack grows down from stackTop; the engine also borrows the free end at stackBottom as scratch memory
 * (number conversion, regular expressions). So the scan goes down from the painted top: the first slot still
 * painted ends the part the stack used.
 */
static int isPainted(txSlot* slot)
{
	unsigned char* b = (unsigned char*)slot;
	size_t i;
	for (i = 0; i < sizeof(txSlot); i++)
		if (b[i] != STACK_PAINT)
			return 0;
	return 1;
}

static txSize stackPeakSlots(txMachine* the)
{
	txSlot* slot = gPaintedTop;
	txSize deepest;
	if (!gPaintedTop)
		return 0;
	while (slot > the->stackBottom && !isPainted(slot - 1))
		slot--;
	deepest = (txSize)(the->stackTop - slot);
	/* Never less than what is in use right now. */
	if (the->stackTop - the->stack > deepest)
		deepest = (txSize)(the->stackTop - the->stack);
	/* Not counted: the frames of the script that called heapMark(), above XS's resting use. */
	return deepest - (gMarkDepth - gRestDepth);
}

static void setNumber(txMachine* the, const char* name, double value)
{
	xsSet(xsResult, xsID(name), xsNumber(value));
}

static void host_heapStats(txMachine* the)
{
	xsResult = xsNewObject();
	setNumber(the, "chunks", (double)the->currentChunksSize);
	setNumber(the, "chunksReserved", (double)the->maximumChunksSize);
	setNumber(the, "slots", (double)the->currentHeapCount);
	setNumber(the, "slotsReserved", (double)the->maximumHeapCount);
	setNumber(the, "slotBytes", (double)sizeof(txSlot));
	setNumber(the, "stackSlots", (double)(gOriginalBottom ? gFlowStack : (txSize)(the->stackTop - the->stackBottom)));
	setNumber(the, "stackPeak", (double)stackPeakSlots(the));
	setNumber(the, "stackRest", (double)gRestDepth);
	setNumber(the, "stackMark", (double)gMarkDepth);
	setNumber(the, "allocated", (double)the->allocatedSpace);
	setNumber(the, "limit", (double)the->allocationLimit);
}

static void define(txMachine* the, const char* name, xsCallback fn, txInteger length)
{
	xsResult = xsNewHostFunction(fn, length);
	xsDefine(xsGlobal, xsID(name), xsResult, xsDontEnum);
}

static txBoolean meterCallback(txMachine* the, txUnsigned index)
{
	return 1;
}

static int usage(const char* why)
{
	fprintf(stderr, "heap-host: %s\n", why);
	fprintf(stderr, "usage: heap-host [-c initialChunkBytes] [-C incrementalChunkBytes] [-h initialSlots] "
		"[-H incrementalSlots] [-k stackSlots] [-K markStackSlots] [-g growthCapBytes] script.js\n");
	return 2;
}

static int parseCount(const char* s, long* out)
{
	char* end;
	long v = strtol(s, &end, 10);
	if (*s == 0 || *end != 0 || v < 0 || v > 0x7fffffffL)
		return 0;
	*out = v;
	return 1;
}

static const char* abortReason(int status)
{
	switch (status) {
	case XS_STACK_OVERFLOW_EXIT: return "stack overflow";
	case XS_NOT_ENOUGH_MEMORY_EXIT: return "memory full";
	case XS_NO_MORE_KEYS_EXIT: return "not enough keys";
	case XS_TOO_MUCH_COMPUTATION_EXIT: return "too much computation";
	case XS_UNHANDLED_EXCEPTION_EXIT: return "unhandled exception";
	case XS_UNHANDLED_REJECTION_EXIT: return "unhandled rejection";
	default: return "abort";
	}
}

int main(int argc, char* argv[])
{
	xsCreation creation = {
		16 * 1024,	/* initialChunkSize */
		1024,		/* incrementalChunkSize */
		1024,		/* initialHeapCount */
		64,			/* incrementalHeapCount */
		4096,		/* stackCount */
		32000,		/* initialKeyCount */
		8000,		/* incrementalKeyCount */
		1993,		/* nameModulo */
		127,		/* symbolModulo */
		8192 * 1024,/* parserBufferSize */
		1993,		/* parserTableModulo */
	};
	const char* script = NULL;
	char path[PATH_MAX];
	txMachine* machine;
	int status;
	int i;

	for (i = 1; i < argc; i++) {
		long v;
		const char* a = argv[i];
		if (a[0] == '-' && a[1] != 0 && a[2] == 0) {
			if (i + 1 >= argc || !parseCount(argv[i + 1], &v))
				return usage("an option needs a count");
			i++;
			switch (a[1]) {
			case 'c': creation.initialChunkSize = (txInteger)v; break;
			case 'C': creation.incrementalChunkSize = (txInteger)v; break;
			case 'h': creation.initialHeapCount = (txInteger)v; break;
			case 'H': creation.incrementalHeapCount = (txInteger)v; break;
			case 'k': creation.stackCount = (txInteger)v; break;
			case 'g': gGrowthCap = (size_t)v; break;
			case 'K': gFlowStack = (txSize)v; break;
			default: return usage("unknown option");
			}
		}
		else if (script == NULL)
			script = a;
		else
			return usage("one script only");
	}
	if (script == NULL)
		return usage("no script");
	if (!c_realpath(script, path)) {
		fprintf(stderr, "heap-host: file not found: %s\n", script);
		return 2;
	}

	machine = xsCreateMachine(&creation, "heap-host", NULL);
	if (machine == NULL) {
		fprintf(stderr, "heap-host: cannot create the XS machine\n");
		return 2;
	}
	/*
	 * fxAbort (memory full, stack overflow, an unhandled exception) jumps to the outermost jump: the one
	 * xsBeginMetering sets up here (no metering: interval 0), as xsnap does.
	 */
	gRestDepth = (txSize)(machine->stackTop - machine->stack);
	xsBeginMetering(machine, meterCallback, 0);
	{
		txMachine* the = machine;
		xsBeginHost(the);
		{
			xsVars(1);
			define(the, "print", host_print, 1);
			define(the, "gc", host_gc, 0);
			define(the, "setImmediate", host_setImmediate, 1);
			define(the, "heapMark", host_heapMark, 0);
			define(the, "heapStats", host_heapStats, 0);
			xsVar(0) = xsNewObject();
			xsResult = xsNewHostFunction(host_now, 0);
			xsDefine(xsVar(0), xsID("now"), xsResult, xsDontEnum);
			xsDefine(xsGlobal, xsID("performance"), xsVar(0), xsDontEnum);
			/* fxAbort reports an unhandled exception through console.error. */
			xsVar(0) = xsNewObject();
			xsResult = xsNewHostFunction(host_print, 1);
			xsDefine(xsVar(0), xsID("error"), xsResult, xsDontEnum);
			xsDefine(xsVar(0), xsID("log"), xsResult, xsDontEnum);
			xsDefine(xsGlobal, xsID("console"), xsVar(0), xsDontEnum);
			fxRunProgramFile(the, path);
		}
		xsEndHost(the);
		if (!machine->abortStatus)
			fxRunLoop(the);
	}
	xsEndMetering(machine);
	status = machine->abortStatus;
	fflush(stdout);
	if (status) {
		/* The machine stopped half way through: exit without tearing it down. */
		fprintf(stderr, "heap-host: XS abort: %s (status %d)\n", abortReason(status), status);
		return status;
	}
	if (gOriginalBottom)
		machine->stackBottom = gOriginalBottom;
	xsDeleteMachine(machine);
	return status;
}
