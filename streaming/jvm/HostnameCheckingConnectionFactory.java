package icu.spark;

import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.CqlSessionBuilder;
import com.datastax.oss.driver.api.core.auth.AuthProvider;
import com.datastax.oss.driver.api.core.config.DefaultDriverOption;
import com.datastax.oss.driver.api.core.config.DriverConfigLoader;
import com.datastax.oss.driver.api.core.config.ProgrammaticDriverConfigLoaderBuilder;
import com.datastax.spark.connector.cql.CassandraConnectionFactory;
import com.datastax.spark.connector.cql.CassandraConnectorConf;
import com.datastax.spark.connector.cql.DefaultConnectionFactory$;
import com.datastax.spark.connector.cql.IpBasedContactInfo;
import com.datastax.spark.connector.cql.MultiplexingSchemaListener;

import scala.Option;

/**
 * The Spark Cassandra Connector's own connection factory with the server's host name
 * checked against its certificate.
 *
 * The connector (3.5.1) builds the Java driver's configuration in
 * {@code DefaultConnectionFactory.connectorConfigBuilder} and always sets
 * {@code advanced.ssl-engine-factory.hostname-validation = false} there, with no setting
 * to change it. This factory takes that same configuration (contact points, pools,
 * timeouts, retry and load balancing policies, trust store, cipher suites), turns the
 * driver's host name validation back on when TLS is on, and builds the session the way
 * the connector does. The driver's {@code DefaultSslEngineFactory} then creates each
 * TLS engine for the node's host name and sets the endpoint identification algorithm
 * "HTTPS": a certificate that does not name the node is refused during the handshake.
 *
 * Selected with {@code spark.cassandra.connection.factory=icu.spark.HostnameCheckingConnectionFactory}
 * (backend/clients.py); compiled by streaming/connection_factory.py.
 */
public final class HostnameCheckingConnectionFactory implements CassandraConnectionFactory
{
    private static final long serialVersionUID = 1L;

    @Override
    public CqlSession createSession(CassandraConnectorConf conf)
    {
        if (!(conf.contactInfo() instanceof IpBasedContactInfo))
            return DefaultConnectionFactory$.MODULE$.createSession(conf);
        IpBasedContactInfo contact = (IpBasedContactInfo) conf.contactInfo();
        ProgrammaticDriverConfigLoaderBuilder config = DefaultConnectionFactory$.MODULE$
            .connectorConfigBuilder(conf, DriverConfigLoader.programmaticBuilder());
        if (contact.cassandraSSLConf().enabled())
            config = config.withBoolean(DefaultDriverOption.SSL_HOSTNAME_VALIDATION, true);
        CqlSessionBuilder builder = CqlSession.builder();
        Option<AuthProvider> auth = contact.authConf().authProvider();
        if (auth.isDefined())
            builder = builder.withAuthProvider(auth.get());
        return builder.withConfigLoader(config.build())
                      .withApplicationName("Spark-Cassandra-Connector-icu")
                      .withSchemaChangeListener(new MultiplexingSchemaListener())
                      .build();
    }
}
