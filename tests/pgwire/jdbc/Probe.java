// What DBeaver and Metabase do on connect, through PostgreSQL's JDBC driver: connect with
// a Cosmictron token as the password, read the catalogue through DatabaseMetaData
// (getTables, getColumns, getPrimaryKeys), then run a parameterised PreparedStatement.
// Prints one line per fact, which tests/pgwire/test_jdbc.py checks.
// Run: java -cp /usr/share/java/postgresql.jar Probe.java URL TOKEN
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.Properties;

public class Probe {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", "jdbc");
        props.setProperty("password", args[1]);
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product " + meta.getDatabaseProductName() + " "
                + meta.getDatabaseMajorVersion());
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_NAME") + " "
                        + rs.getString("TABLE_TYPE"));
                }
            }
            try (ResultSet rs = meta.getColumns(null, "public", "item", "%")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " "
                        + rs.getString("TYPE_NAME") + " " + rs.getInt("ORDINAL_POSITION")
                        + " " + rs.getString("IS_NULLABLE"));
                }
            }
            try (ResultSet rs = meta.getPrimaryKeys(null, "public", "item")) {
                while (rs.next()) {
                    System.out.println("pk " + rs.getString("COLUMN_NAME") + " "
                        + rs.getInt("KEY_SEQ"));
                }
            }
            String sql = "SELECT id, name FROM item WHERE id >= ? AND id < ? ORDER BY id";
            try (PreparedStatement st = conn.prepareStatement(sql)) {
                // Six runs: the driver switches to a server-side prepared statement at the fifth.
                for (int run = 0; run < 6; run++) {
                    st.setLong(1, 2);
                    st.setLong(2, 4);
                    StringBuilder line = new StringBuilder("rows");
                    try (ResultSet rs = st.executeQuery()) {
                        while (rs.next()) {
                            line.append(" ").append(rs.getLong(1)).append(":").append(rs.getString(2));
                        }
                    }
                    System.out.println(line);
                }
            }
        }
    }
}
