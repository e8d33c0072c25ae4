// ZooKeeper's load generator for `delos-ref bench compare`: compiled at run time with javac
// against the jars of Debian's zookeeper package (delos_ref/bench/peers/zookeeper.py).
//
// java ZkLoad CONNECT CLIENTS SECONDS VALUE_BYTES [write|read]
//
// CLIENTS sessions (ZooKeeper's own Java client, the fastest it offers), each with one setData
// of VALUE_BYTES in flight at a time (OP write, the default) or one getData (OP read), on its
// own znode /delos-bench/c<i> (created with VALUE_BYTES), spread over the servers of CONNECT in
// turn. A getData is answered by the server the session is on, from its memory, without a
// quorum: ZooKeeper's reads are not linearizable (they may miss writes another session has
// seen acknowledged), unlike delos-ref's linearizable get. Operations that complete within the measured window (Cpu.java:
// SECONDS long, from when the Python side says) are counted; the ones before are the warm-up
// (JIT, connections). Prints one JSON
// line: {"ops", "elapsed_s", "cpu_s", "lat_us": [...]}, cpu_s being this JVM's own CPU time
// (all threads: client, JIT, GC) over the window.
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

public class ZkLoad {

    public static void main(String[] a) throws Exception {
        String[] servers = a[0].split(",");
        int clients = Integer.parseInt(a[1]);
        double seconds = Double.parseDouble(a[2]);
        byte[] value = new byte[Integer.parseInt(a[3])];
        java.util.Arrays.fill(value, (byte) 'v');
        boolean read = a.length > 4 && a[4].equals("read");
        // Every session connects at once (one after another, 64 handshakes on a loaded machine
        // take minutes), then every thread makes its znode and starts its loop.
        List<ZooKeeper> sessions = new ArrayList<>();
        CountDownLatch connected = new CountDownLatch(clients);
        for (int i = 0; i < clients; i++) {
            sessions.add(new ZooKeeper(servers[i % servers.length], 30000, e -> {
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
            }));
        }
        if (!connected.await(90, TimeUnit.SECONDS)) throw new IllegalStateException("sessions not connected after 90 s: " + connected.getCount() + " missing");
        try {
            sessions.get(0).create("/delos-bench", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException e) { /* another process made it */ }
        String tag = ManagementFactory.getRuntimeMXBean().getPid() + "-";
        long[][] lat = new long[clients][];
        int[] count = new int[clients];
        Thread[] threads = new Thread[clients];
        CountDownLatch created = new CountDownLatch(clients);
        for (int i = 0; i < clients; i++) {
            final int me = i;
            String path = "/delos-bench/c" + tag + i;
            lat[i] = new long[1 << 16];
            threads[i] = new Thread(() -> {
                try {
                    sessions.get(me).create(path, value, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    created.countDown();
                    while (true) {
                        long t0 = System.nanoTime();
                        if (read) sessions.get(me).getData(path, false, null);
                        else sessions.get(me).setData(path, value, -1);
                        long t1 = System.nanoTime();
                        long now = System.currentTimeMillis();
                        if (Cpu.counted(now)) {
                            if (count[me] == lat[me].length) lat[me] = java.util.Arrays.copyOf(lat[me], 2 * count[me]);
                            lat[me][count[me]++] = (t1 - t0) / 1000;
                        }
                        if (Cpu.done(now)) return;
                    }
                } catch (Exception e) {
                    System.err.println((read ? "getData: " : "setData: ") + e);
                    System.exit(1);
                }
            });
            threads[i].start();
        }
        if (!created.await(90, TimeUnit.SECONDS)) throw new IllegalStateException("znodes not created after 90 s");
        Cpu.report(seconds, threads, lat, count);
        for (ZooKeeper zk : sessions) zk.close(100);
    }
}
