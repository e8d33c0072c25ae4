// etcd's load generator for `delos-ref bench compare` (delos_ref/bench/peers/etcd.py).
//
// java EtcdLoad URLS CLIENTS SECONDS VALUE_BYTES [write|read]
//
// OP write (the default) puts; OP read puts the key once, then reads it (POST /v3/kv/range,
// linearizable: etcd's default, serializable=false, confirms its leadership with a quorum).
//
// Debian ships etcd's server and etcdctl (one process per command), not its Go benchmark tool;
// this client puts through etcd's own HTTP/JSON gateway (POST /v3/kv/put, the gRPC API as JSON):
// CLIENTS threads, each with its own keep-alive connection and one put of VALUE_BYTES in flight
// at a time, on its own key, spread over the servers of URLS in turn. Each thread writes a
// request prepared once and reads the reply's status line and Content-Length by hand: the
// JDK's HttpClient cost about as much CPU per put as etcd's three servers together, so it
// measured itself more than etcd. Counting, warm-up and output as in ZkLoad.java.
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

public class EtcdLoad {
    public static void main(String[] a) throws Exception {
        String[] urls = a[0].split(",");
        int clients = Integer.parseInt(a[1]);
        double seconds = Double.parseDouble(a[2]);
        String value = Base64.getEncoder().encodeToString("v".repeat(Integer.parseInt(a[3])).getBytes(StandardCharsets.US_ASCII));
        boolean read = a.length > 4 && a[4].equals("read");
        String tag = ProcessHandle.current().pid() + "-";
        long[][] lat = new long[clients][];
        int[] count = new int[clients];
        Thread[] threads = new Thread[clients];
        for (int i = 0; i < clients; i++) {
            final int me = i;
            String key = Base64.getEncoder().encodeToString(("delos-bench/c" + tag + i).getBytes(StandardCharsets.US_ASCII));
            URI server = URI.create(urls[i % urls.length]);
            String body = "{\"key\":\"" + key + "\",\"value\":\"" + value + "\"}";
            byte[] put = request(server, "/v3/kv/put", body);
            byte[] op = read ? request(server, "/v3/kv/range", "{\"key\":\"" + key + "\"}") : put;
            lat[i] = new long[1 << 16];
            threads[i] = new Thread(() -> {
                try (Socket socket = new Socket(server.getHost(), server.getPort())) {
                    socket.setTcpNoDelay(true);
                    socket.setSoTimeout(30000);
                    OutputStream out = socket.getOutputStream();
                    InputStream in = new BufferedInputStream(socket.getInputStream());
                    if (read) {  // the key it reads exists
                        out.write(put);
                        out.flush();
                        readReply(in);
                    }
                    while (true) {
                        long t0 = System.nanoTime();
                        out.write(op);
                        out.flush();
                        readReply(in);
                        long t1 = System.nanoTime();
                        long now = System.currentTimeMillis();
                        if (Cpu.counted(now)) {
                            if (count[me] == lat[me].length) lat[me] = java.util.Arrays.copyOf(lat[me], 2 * count[me]);
                            lat[me][count[me]++] = (t1 - t0) / 1000;
                        }
                        if (Cpu.done(now)) return;
                    }
                } catch (Exception e) {
                    System.err.println((read ? "range: " : "put: ") + e);
                    System.exit(1);
                }
            });
            threads[i].start();
        }
        Cpu.report(seconds, threads, lat, count);
    }

    /** A POST of a JSON body to the gateway, prepared once. */
    static byte[] request(URI server, String path, String body) {
        return ("POST " + path + " HTTP/1.1\r\nHost: " + server.getHost() + ":" + server.getPort()
                + "\r\nContent-Type: application/json\r\nContent-Length: " + body.length() + "\r\n\r\n" + body).getBytes(StandardCharsets.US_ASCII);
    }

    /** One HTTP/1.1 reply: its header lines, then Content-Length bytes of body; not 200: an error. */
    static void readReply(InputStream in) throws IOException {
        StringBuilder line = new StringBuilder();
        int length = -1;
        String status = null;
        while (true) {
            int c = in.read();
            if (c < 0) throw new IOException("connection closed by etcd");
            if (c != '\n') {
                if (c != '\r') line.append((char) c);
                continue;
            }
            if (line.length() == 0) break;  // the blank line after the headers
            String h = line.toString();
            if (status == null) status = h;
            else if (h.regionMatches(true, 0, "Content-Length:", 0, 15)) length = Integer.parseInt(h.substring(15).trim());
            line.setLength(0);
        }
        if (length < 0) throw new IOException("reply without Content-Length: " + status);
        byte[] body = in.readNBytes(length);
        if (!status.startsWith("HTTP/1.1 200")) throw new IOException(status + ": " + new String(body, StandardCharsets.UTF_8));
    }
}
