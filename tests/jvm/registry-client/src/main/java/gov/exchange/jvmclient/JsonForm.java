package gov.exchange.jvmclient;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.avro.LogicalType;
import org.apache.avro.LogicalTypes;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericContainer;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;

/**
 * The bus's JSON form of an Avro value (exchange/avro/jsoncodec.py): dates as ISO dates,
 * timestamps as ISO date-times with milliseconds in China Standard Time (+08:00), decimals
 * as strings, bytes and fixed as base64, enums as their symbol, unions as the bare value.
 */
final class JsonForm {
  private static final ZoneOffset CHINA = ZoneOffset.ofHours(8);
  private static final DateTimeFormatter ISO_MILLIS = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSSxxx");
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

  private JsonForm() {}

  static JsonNode of(Schema schema, Object value, ObjectMapper json) {
    if (value == null) {
      return NODES.nullNode();
    }
    LogicalType logical = schema.getLogicalType();
    if (logical != null) {
      JsonNode converted = logical(logical, value);
      if (converted != null) {
        return converted;
      }
    }
    switch (schema.getType()) {
      case RECORD: {
        GenericRecord rec = (GenericRecord) value;
        ObjectNode node = NODES.objectNode();
        for (Schema.Field f : schema.getFields()) {
          node.set(f.name(), of(f.schema(), rec.get(f.pos()), json));
        }
        return node;
      }
      case UNION:
        return of(schema.getTypes().get(GenericData.get().resolveUnion(schema, value)), value, json);
      case ARRAY: {
        ArrayNode node = NODES.arrayNode();
        for (Object item : (List<?>) value) {
          node.add(of(schema.getElementType(), item, json));
        }
        return node;
      }
      case MAP: {
        ObjectNode node = NODES.objectNode();
        for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
          node.set(e.getKey().toString(), of(schema.getValueType(), e.getValue(), json));
        }
        return node;
      }
      case ENUM:
      case STRING:
        return NODES.textNode(value.toString());
      case BYTES:
        return NODES.textNode(Base64.getEncoder().encodeToString(bytes(value)));
      case FIXED:
        return NODES.textNode(Base64.getEncoder().encodeToString(((GenericFixed) value).bytes()));
      default:
        return json.valueToTree(value); // int, long, float, double, boolean
    }
  }

  private static JsonNode logical(LogicalType logical, Object value) {
    if (logical instanceof LogicalTypes.Date) {
      return NODES.textNode(LocalDate.ofEpochDay((Integer) value).toString());
    }
    if (logical instanceof LogicalTypes.TimestampMillis) {
      return NODES.textNode(ISO_MILLIS.format(Instant.ofEpochMilli((Long) value).atOffset(CHINA)));
    }
    if (logical instanceof LogicalTypes.TimestampMicros) {
      long micros = (Long) value;
      Instant at = Instant.ofEpochSecond(Math.floorDiv(micros, 1_000_000L), Math.floorMod(micros, 1_000_000L) * 1000L);
      return NODES.textNode(ISO_MILLIS.format(at.atOffset(CHINA)));
    }
    if (logical instanceof LogicalTypes.Decimal) {
      int scale = ((LogicalTypes.Decimal) logical).getScale();
      byte[] raw = value instanceof GenericContainer ? ((GenericFixed) value).bytes() : bytes(value);
      return NODES.textNode(new BigDecimal(new BigInteger(raw), scale).toPlainString());
    }
    return null;
  }

  private static byte[] bytes(Object value) {
    ByteBuffer buf = ((ByteBuffer) value).duplicate();
    byte[] out = new byte[buf.remaining()];
    buf.get(out);
    return out;
  }
}
