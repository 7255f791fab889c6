package icu.cassandra;

import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.cassandra.auth.AuthenticatedUser;
import org.apache.cassandra.cql3.BatchQueryOptions;
import org.apache.cassandra.cql3.CQLStatement;
import org.apache.cassandra.cql3.ColumnIdentifier;
import org.apache.cassandra.cql3.QueryHandler;
import org.apache.cassandra.cql3.QueryOptions;
import org.apache.cassandra.cql3.Attributes;
import org.apache.cassandra.cql3.QueryProcessor;
import org.apache.cassandra.cql3.statements.BatchStatement;
import org.apache.cassandra.cql3.statements.ModificationStatement;
import org.apache.cassandra.cql3.statements.StatementType;
import org.apache.cassandra.cql3.statements.TruncateStatement;
import org.apache.cassandra.db.Clustering;
import org.apache.cassandra.db.ConsistencyLevel;
import org.apache.cassandra.db.marshal.CompositeType;
import org.apache.cassandra.exceptions.UnauthorizedException;
import org.apache.cassandra.schema.ColumnMetadata;
import org.apache.cassandra.schema.TableId;
import org.apache.cassandra.schema.TableMetadata;
import org.apache.cassandra.service.ClientState;
import org.apache.cassandra.service.QueryState;
import org.apache.cassandra.transport.Dispatcher;
import org.apache.cassandra.transport.messages.ResultMessage;
import org.apache.cassandra.utils.ByteBufferUtil;
import org.apache.cassandra.utils.FBUtilities;
import org.apache.cassandra.utils.MD5Digest;

/**
 * Append-only tables for every role but superusers.
 *
 * Cassandra's permissions cannot tell an INSERT from an UPDATE, DELETE or TRUNCATE: all
 * four need MODIFY, and every write is an upsert. For the tables named in the system
 * property {@code icu.append_only_tables} (comma-separated table names, any keyspace),
 * this query handler lets a role that is not a superuser do one thing: INSERT a row
 * whose primary key does not exist yet. It refuses
 * <ul>
 * <li>UPDATE, DELETE and TRUNCATE;</li>
 * <li>an INSERT (plain or JSON) whose primary key already has a row: it would overwrite
 *     that entry's cells. The row is read at LOCAL_QUORUM before the write;</li>
 * <li>two INSERTs of the same primary key in one batch (the second would win);</li>
 * <li>an INSERT with its own TTL or {@code USING TIMESTAMP} (the statement's or the
 *     batch's), which would let a row expire or hide behind an older write, and one whose
 *     client-side (protocol) timestamp is more than {@code icu.append_only_max_skew_seconds}
 *     (default 600) from the server's clock: a row written in the future survives the
 *     superuser's DELETE (erasure);</li>
 * <li>an INSERT that writes a static column: one value shared by every row of the
 *     partition, so writing it would change the earlier entries.</li>
 * </ul>
 * Single statements, prepared statements, query-string batches and protocol batches
 * (logged or not) all go through these checks. Everything else goes to Cassandra's own
 * query processor unchanged; permissions are still checked by the authorizer.
 *
 * Left open: two INSERTs of the same new key at the same instant, each read before the
 * other is written (see docs/security.md).
 *
 * Loaded with {@code -Dcassandra.custom_query_handler_class=icu.cassandra.AppendOnlyQueryHandler}
 * (ops/secure_services.py).
 */
public final class AppendOnlyQueryHandler implements QueryHandler
{
    private static final Set<String> TABLES = Arrays.stream(
            System.getProperty("icu.append_only_tables", "").split(","))
        .map(String::trim).filter(s -> !s.isEmpty()).collect(Collectors.toSet());
    private static final long MAX_SKEW_MICROS = TimeUnit.SECONDS.toMicros(
        Long.getLong("icu.append_only_max_skew_seconds", 600L));
    private static final ConsistencyLevel READ_CONSISTENCY = ConsistencyLevel.LOCAL_QUORUM;
    private static final Field TYPE;
    private static final Field BATCH_ATTRS;
    /** Per table: "SELECT ... WHERE every primary key column = ?". */
    private static final Map<TableId, String> EXISTS = new ConcurrentHashMap<>();

    static
    {
        try
        {
            TYPE = ModificationStatement.class.getDeclaredField("type");
            TYPE.setAccessible(true);
            BATCH_ATTRS = BatchStatement.class.getDeclaredField("attrs");
            BATCH_ATTRS.setAccessible(true);
        }
        catch (NoSuchFieldException e)
        {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final QueryHandler delegate = QueryProcessor.instance;

    @Override
    public CQLStatement parse(String query, QueryState state, QueryOptions options)
    {
        return delegate.parse(query, state, options);
    }

    @Override
    public ResultMessage process(CQLStatement statement, QueryState state, QueryOptions options,
                                 Map<String, ByteBuffer> customPayload,
                                 Dispatcher.RequestTime requestTime)
    {
        check(statement, state, options);
        return delegate.process(statement, state, options, customPayload, requestTime);
    }

    @Override
    public ResultMessage.Prepared prepare(String query, ClientState clientState,
                                          Map<String, ByteBuffer> customPayload)
    {
        return delegate.prepare(query, clientState, customPayload);
    }

    @Override
    public QueryHandler.Prepared getPrepared(MD5Digest id)
    {
        return delegate.getPrepared(id);
    }

    @Override
    public ResultMessage processPrepared(CQLStatement statement, QueryState state,
                                         QueryOptions options,
                                         Map<String, ByteBuffer> customPayload,
                                         Dispatcher.RequestTime requestTime)
    {
        check(statement, state, options);
        return delegate.processPrepared(statement, state, options, customPayload, requestTime);
    }

    @Override
    public ResultMessage processBatch(BatchStatement statement, QueryState state,
                                      BatchQueryOptions options,
                                      Map<String, ByteBuffer> customPayload,
                                      Dispatcher.RequestTime requestTime)
    {
        if (!TABLES.isEmpty() && !isSuper(state.getClientState()))
        {
            List<ModificationStatement> statements = statement.getStatements();
            List<QueryOptions> each = new ArrayList<>(statements.size());
            for (int i = 0; i < statements.size(); i++)
                each.add(options.forStatement(i));
            checkBatch(statement, statements, each, state, options.getTimestamp(state));
        }
        return delegate.processBatch(statement, state, options, customPayload, requestTime);
    }

    private static boolean isSuper(ClientState client)
    {
        AuthenticatedUser user = client.getUser();
        return user != null && user.isSuper();
    }

    private static void check(CQLStatement statement, QueryState state, QueryOptions options)
    {
        if (TABLES.isEmpty() || isSuper(state.getClientState()))
            return;
        if (statement instanceof BatchStatement)
        {
            // a BEGIN BATCH ... APPLY BATCH sent as one query string: its statements'
            // bind markers all index the one set of values
            BatchStatement batch = (BatchStatement) statement;
            List<ModificationStatement> statements = batch.getStatements();
            List<QueryOptions> each = new ArrayList<>(statements.size());
            for (int i = 0; i < statements.size(); i++)
                each.add(options);
            checkBatch(batch, statements, each, state, options.getTimestamp(state));
            return;
        }
        if (statement instanceof ModificationStatement)
        {
            checkWrite((ModificationStatement) statement, state, options,
                       options.getTimestamp(state), new HashSet<>());
        }
        else if (statement instanceof TruncateStatement)
        {
            TruncateStatement t = (TruncateStatement) statement;
            if (TABLES.contains(t.name()))
                throw refused("TRUNCATE", t.keyspace(), t.name());
        }
    }

    private static void checkBatch(BatchStatement batch, List<ModificationStatement> statements,
                                   List<QueryOptions> options, QueryState state, long timestamp)
    {
        Set<String> keys = new HashSet<>();
        for (int i = 0; i < statements.size(); i++)
        {
            ModificationStatement m = statements.get(i);
            if (TABLES.contains(m.table()) && batchTimestampSet(batch))
                throw refused("a batch with USING TIMESTAMP", m.keyspace(), m.table());
            checkWrite(m, state, options.get(i), timestamp, keys);
        }
    }

    /** Refuses anything on an append-only table but the INSERT of a new row. */
    private static void checkWrite(ModificationStatement m, QueryState state,
                                   QueryOptions options, long timestamp, Set<String> batchKeys)
    {
        if (!TABLES.contains(m.table()))
            return;
        StatementType type = type(m);
        if (!type.isInsert())
            throw refused(type.name(), m.keyspace(), m.table());
        if (m.isTimestampSet()
            || m.getTimeToLive(options) != m.metadata().params.defaultTimeToLive)
            throw refused("INSERT with its own TTL or timestamp", m.keyspace(), m.table());
        if (Math.abs(timestamp - FBUtilities.timestampMicros()) > MAX_SKEW_MICROS)
            throw refused("INSERT with a client timestamp more than "
                          + TimeUnit.MICROSECONDS.toSeconds(MAX_SKEW_MICROS)
                          + " s from the server's clock", m.keyspace(), m.table());
        if (m.updatesStaticRow())
            throw refused("INSERT writing a static column (shared by the partition's earlier "
                          + "rows)", m.keyspace(), m.table());
        ClientState client = state.getClientState();
        for (ByteBuffer partition : m.buildPartitionKeyNames(options, client))
        {
            for (Clustering<?> clustering : m.createClustering(options, client))
            {
                Object[] key = primaryKey(m.metadata(), partition, clustering);
                StringBuilder id = new StringBuilder(m.metadata().id.toString());
                for (Object part : key)
                    id.append(':').append(ByteBufferUtil.bytesToHex((ByteBuffer) part));
                if (!batchKeys.add(id.toString()))
                    throw refused("a batch writing the same entry twice", m.keyspace(),
                                  m.table());
                if (!QueryProcessor.execute(existsQuery(m.metadata()), READ_CONSISTENCY, key)
                                   .isEmpty())
                    throw refused("INSERT over an existing entry (a row with this primary "
                                  + "key is already there)", m.keyspace(), m.table());
            }
        }
    }

    /** The primary key's column values in the order of {@link #existsQuery}. */
    private static Object[] primaryKey(TableMetadata table, ByteBuffer partition,
                                       Clustering<?> clustering)
    {
        List<ColumnMetadata> pk = table.partitionKeyColumns();
        ByteBuffer[] parts = pk.size() == 1
                             ? new ByteBuffer[]{ partition }
                             : ((CompositeType) table.partitionKeyType).split(partition);
        Object[] key = new Object[parts.length + clustering.size()];
        System.arraycopy(parts, 0, key, 0, parts.length);
        for (int i = 0; i < clustering.size(); i++)
            key[parts.length + i] = clustering.bufferAt(i);
        return key;
    }

    private static String existsQuery(TableMetadata table)
    {
        TableMetadata t = table;
        return EXISTS.computeIfAbsent(table.id, id -> {
            List<String> where = new ArrayList<>();
            for (ColumnMetadata c : t.partitionKeyColumns())
                where.add(c.name.toCQLString() + " = ?");
            for (ColumnMetadata c : t.clusteringColumns())
                where.add(c.name.toCQLString() + " = ?");
            return String.format("SELECT %s FROM %s WHERE %s LIMIT 1",
                                 t.partitionKeyColumns().get(0).name.toCQLString(),
                                 ColumnIdentifier.maybeQuote(t.keyspace) + "."
                                 + ColumnIdentifier.maybeQuote(t.name), String.join(" AND ", where));
        });
    }

    private static UnauthorizedException refused(String what, String keyspace, String table)
    {
        return new UnauthorizedException(String.format(
            "%s on %s.%s refused: the table is append-only (only a superuser may change or "
            + "remove its rows)", what, keyspace, table));
    }

    private static boolean batchTimestampSet(BatchStatement batch)
    {
        try
        {
            return ((Attributes) BATCH_ATTRS.get(batch)).isTimestampSet();
        }
        catch (IllegalAccessException e)
        {
            throw new IllegalStateException(e);
        }
    }

    private static StatementType type(ModificationStatement m)
    {
        try
        {
            return (StatementType) TYPE.get(m);
        }
        catch (IllegalAccessException e)
        {
            throw new IllegalStateException(e);
        }
    }
}
