package gov.exchange.jvmclient;

import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.springframework.cloud.stream.schema.registry.client.ConfluentSchemaRegistryClient;
import org.springframework.http.client.support.BasicAuthenticationInterceptor;
import org.springframework.web.client.RestTemplate;

/**
 * Reads a delivery topic from the beginning and prints each record as one JSON line:
 * {"record_id", "partition", "offset", "schema_id", "value"}.
 *
 * <p>Every value is in Confluent's wire format (magic byte 0, a 4-byte schema id, Avro
 * binary); the id is resolved through the registry with Spring Cloud Stream's
 * ConfluentSchemaRegistryClient (GET /schemas/ids/{id}) and the value decoded with Avro's
 * GenericDatumReader. The value's JSON form is the bus's (see JsonForm).
 *
 * <p>Options: --bootstrap HOST:PORT --topic T --registry URL [--registry-user U]
 * [--security-protocol SASL_PLAINTEXT --sasl-mechanism M --sasl-user U] [--count N]
 * [--timeout SECONDS]. Passwords come from the environment, never the command line:
 * REGISTRY_PASSWORD and KAFKA_SASL_PASSWORD. Stops after N records, at the end of the
 * topic (without --count), or after the timeout. Exit code 2: a usage error.
 */
public final class DecodeDeliveries {
  private DecodeDeliveries() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> opts = parse(argv);
    String topic = require(opts, "topic");
    int count = Integer.parseInt(opts.getOrDefault("count", "-1"));
    long deadline = System.nanoTime() + (long) (Double.parseDouble(opts.getOrDefault("timeout", "30")) * 1e9);

    ConfluentSchemaRegistryClient registry = registry(opts);
    Map<Integer, GenericDatumReader<GenericRecord>> readers = new HashMap<>();
    ObjectMapper json = new ObjectMapper();
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    int printed = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerConfig(opts))) {
      List<TopicPartition> parts = new ArrayList<>();
      for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(20))) {
        parts.add(new TopicPartition(topic, p.partition()));
      }
      consumer.assign(parts); // no consumer group: nothing committed, no group ACL needed
      consumer.seekToBeginning(parts);
      Map<TopicPartition, Long> end = consumer.endOffsets(parts);
      while (System.nanoTime() < deadline && (count < 0 ? !atEnd(consumer, end) : printed < count)) {
        for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(200))) {
          ByteBuffer wire = ByteBuffer.wrap(rec.value());
          if (wire.remaining() < 5 || wire.get() != 0) {
            throw new IllegalStateException(
                "record at " + rec.partition() + "@" + rec.offset() + " is not in Confluent's wire format");
          }
          int id = wire.getInt();
          GenericDatumReader<GenericRecord> reader = readers.computeIfAbsent(id, sid -> {
            Schema schema = new Schema.Parser().parse(registry.fetch(sid));
            return new GenericDatumReader<>(schema);
          });
          GenericRecord value = reader.read(null, DecoderFactory.get().binaryDecoder(
              rec.value(), 5, rec.value().length - 5, null));
          ObjectNode line = json.createObjectNode();
          Header rid = rec.headers().lastHeader("gov-record-id");
          line.put("record_id", rid == null ? null : new String(rid.value(), StandardCharsets.UTF_8));
          line.put("partition", rec.partition());
          line.put("offset", rec.offset());
          line.put("schema_id", id);
          line.set("value", JsonForm.of(value.getSchema(), value, json));
          out.println(json.writeValueAsString(line));
          printed++;
        }
      }
    }
    System.err.println(printed + " records of " + topic);
  }

  private static boolean atEnd(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> end) {
    for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
      if (consumer.position(e.getKey()) < e.getValue()) {
        return false;
      }
    }
    return true;
  }

  private static ConfluentSchemaRegistryClient registry(Map<String, String> opts) {
    RestTemplate rest = new RestTemplate();
    String user = opts.get("registry-user");
    if (user != null) {
      String password = System.getenv().getOrDefault("REGISTRY_PASSWORD", "");
      rest.getInterceptors().add(new BasicAuthenticationInterceptor(user, password, StandardCharsets.UTF_8));
    }
    ConfluentSchemaRegistryClient client = new ConfluentSchemaRegistryClient(rest);
    client.setEndpoint(require(opts, "registry"));
    return client;
  }

  private static Properties consumerConfig(Map<String, String> opts) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, require(opts, "bootstrap"));
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    String protocol = opts.get("security-protocol");
    if (protocol != null && protocol.startsWith("SASL")) {
      String mechanism = opts.getOrDefault("sasl-mechanism", "SCRAM-SHA-512");
      String module = mechanism.equals("PLAIN")
          ? "org.apache.kafka.common.security.plain.PlainLoginModule"
          : "org.apache.kafka.common.security.scram.ScramLoginModule";
      String password = System.getenv().getOrDefault("KAFKA_SASL_PASSWORD", "");
      p.put("security.protocol", protocol);
      p.put("sasl.mechanism", mechanism);
      p.put("sasl.jaas.config", module + " required username=\"" + jaasQuote(require(opts, "sasl-user"))
          + "\" password=\"" + jaasQuote(password) + "\";");
    }
    return p;
  }

  private static String jaasQuote(String s) {
    return s.replace("\\", "\\\\").replace("\"", "\\\"");
  }

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> opts = new HashMap<>();
    for (int i = 0; i < argv.length; i += 2) {
      if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
        usage("expected --option value pairs, got '" + argv[i] + "'");
      }
      opts.put(argv[i].substring(2), argv[i + 1]);
    }
    return opts;
  }

  private static String require(Map<String, String> opts, String name) {
    String v = opts.get(name);
    if (v == null) {
      usage("--" + name + " is required");
    }
    return v;
  }

  private static void usage(String why) {
    System.err.println("DecodeDeliveries: " + why);
    System.exit(2);
  }
}
