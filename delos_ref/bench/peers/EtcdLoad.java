// etcd's load generator for `delos-ref bench compare` (delos_ref/bench/peers/etcd.py).
//
// java EtcdLoad URLS CLIENTS SECONDS VALUE_BYTES
//
// Debian ships etcd's server and etcdctl (one process per command), not its Go benchmark tool;
// this client puts through etcd's own HTTP/JSON gateway (POST /v3/kv/put, the gRPC API as JSON)
// with the JDK's HttpClient over keep-alive connections: CLIENTS threads, each with one put of
// VALUE_BYTES in flight at a time, on its own key, spread over the servers of URLS in turn.
// Counting, warm-up and output as in ZkLoad.java.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;

public class EtcdLoad {
    public static void main(String[] a) throws Exception {
        String[] urls = a[0].split(",");
        int clients = Integer.parseInt(a[1]);
        double seconds = Double.parseDouble(a[2]);
        String value = Base64.getEncoder().encodeToString("v".repeat(Integer.parseInt(a[3])).getBytes(StandardCharsets.US_ASCII));
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
        String tag = ProcessHandle.current().pid() + "-";
        long[][] lat = new long[clients][];
        int[] count = new int[clients];
        Thread[] threads = new Thread[clients];
        for (int i = 0; i < clients; i++) {
            final int me = i;
            String key = Base64.getEncoder().encodeToString(("delos-bench/c" + tag + i).getBytes(StandardCharsets.US_ASCII));
            HttpRequest put = HttpRequest.newBuilder(URI.create(urls[i % urls.length] + "/v3/kv/put"))
                    .timeout(Duration.ofSeconds(30))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"key\":\"" + key + "\",\"value\":\"" + value + "\"}"))
                    .build();
            lat[i] = new long[1 << 16];
            threads[i] = new Thread(() -> {
                try {
                    while (true) {
                        long t0 = System.nanoTime();
                        HttpResponse<String> r = http.send(put, HttpResponse.BodyHandlers.ofString());
                        long t1 = System.nanoTime();
                        if (r.statusCode() != 200) throw new IllegalStateException("HTTP " + r.statusCode() + ": " + r.body());
                        long now = System.currentTimeMillis();
                        if (Cpu.counted(now)) {
                            if (count[me] == lat[me].length) lat[me] = java.util.Arrays.copyOf(lat[me], 2 * count[me]);
                            lat[me][count[me]++] = (t1 - t0) / 1000;
                        }
                        if (Cpu.done(now)) return;
                    }
                } catch (Exception e) {
                    System.err.println("put: " + e);
                    System.exit(1);
                }
            });
            threads[i].start();
        }
        Cpu.report(seconds, threads, lat, count);
    }
}
