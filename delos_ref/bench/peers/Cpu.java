// Shared by the peers' load generators: the measured window, this JVM's own CPU time over it,
// and the one JSON line the Python side reads.
//
// The window is set by the Python side once every load process is ready: each prints "ready"
// when its clients are connected and running (the warm-up has begun), then reads one line,
// the window's start in epoch milliseconds; the window is SECONDS long from there.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;

final class Cpu {
    static volatile long startAt = Long.MAX_VALUE;
    static volatile long endAt = Long.MAX_VALUE;

    static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    static void sleepUntil(long epochMs) throws InterruptedException {
        long d = epochMs - System.currentTimeMillis();
        if (d > 0) Thread.sleep(d);
    }

    /** Counted: an operation that completed inside the window. Done: the window is over. */
    static boolean counted(long now) { return now >= startAt && now < endAt; }
    static boolean done(long now) { return now >= endAt; }

    static void report(double seconds, Thread[] threads, long[][] lat, int[] count) throws Exception {
        System.out.println("ready");
        System.out.flush();
        String line = new BufferedReader(new InputStreamReader(System.in)).readLine();
        if (line == null) System.exit(2);  // the Python side went away
        long start = Long.parseLong(line.trim());
        endAt = start + (long) (seconds * 1000);
        startAt = start;
        sleepUntil(start);
        long cpu0 = processCpuNanos();
        sleepUntil(endAt);
        long cpu1 = processCpuNanos();
        for (Thread t : threads) t.join(30000);
        StringBuilder out = new StringBuilder();
        long ops = 0;
        out.append("{\"elapsed_s\": ").append(seconds).append(", \"cpu_s\": ").append((cpu1 - cpu0) / 1e9).append(", \"lat_us\": [");
        boolean first = true;
        for (int i = 0; i < lat.length; i++) {
            for (int j = 0; j < count[i]; j++) {
                if (!first) out.append(',');
                out.append(lat[i][j]);
                first = false;
            }
            ops += count[i];
        }
        out.append("], \"ops\": ").append(ops).append('}');
        System.out.println(out);
        System.out.flush();
    }
}
