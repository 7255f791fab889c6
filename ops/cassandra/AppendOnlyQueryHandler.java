package icu.cassandra;

import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.cassandra.auth.AuthenticatedUser;
import org.apache.cassandra.cql3.BatchQueryOptions;
import org.apache.cassandra.cql3.CQLStatement;
import org.apache.cassandra.cql3.QueryHandler;
import org.apache.cassandra.cql3.QueryOptions;
import org.apache.cassandra.cql3.QueryProcessor;
import org.apache.cassandra.cql3.statements.BatchStatement;
import org.apache.cassandra.cql3.statements.ModificationStatement;
import org.apache.cassandra.cql3.statements.StatementType;
import org.apache.cassandra.cql3.statements.TruncateStatement;
import org.apache.cassandra.exceptions.UnauthorizedException;
import org.apache.cassandra.service.ClientState;
import org.apache.cassandra.service.QueryState;
import org.apache.cassandra.transport.Dispatcher;
import org.apache.cassandra.transport.messages.ResultMessage;
import org.apache.cassandra.utils.MD5Digest;

/**
 * Append-only tables for every role but superusers.
 *
 * Cassandra's permissions cannot tell an INSERT from an UPDATE, DELETE or TRUNCATE: all
 * four need MODIFY. For the tables named in the system property
 * {@code icu.append_only_tables} (comma-separated table names, any keyspace), this query
 * handler refuses UPDATE, DELETE and TRUNCATE, and an INSERT with its own TTL or
 * timestamp (which would let a row expire or hide behind an older write), unless the
 * signed-in role is a superuser. Everything else goes to Cassandra's own query processor
 * unchanged; permissions are still checked by the authorizer.
 *
 * Loaded with {@code -Dcassandra.custom_query_handler_class=icu.cassandra.AppendOnlyQueryHandler}
 * (ops/secure_services.py).
 */
public final class AppendOnlyQueryHandler implements QueryHandler
{
    private static final Set<String> TABLES = Arrays.stream(
            System.getProperty("icu.append_only_tables", "").split(","))
        .map(String::trim).filter(s -> !s.isEmpty()).collect(Collectors.toSet());
    private static final Field TYPE;

    static
    {
        try
        {
            TYPE = ModificationStatement.class.getDeclaredField("type");
            TYPE.setAccessible(true);
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
        check(statement, state.getClientState(), options);
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
        check(statement, state.getClientState(), options);
        return delegate.processPrepared(statement, state, options, customPayload, requestTime);
    }

    @Override
    public ResultMessage processBatch(BatchStatement statement, QueryState state,
                                      BatchQueryOptions options,
                                      Map<String, ByteBuffer> customPayload,
                                      Dispatcher.RequestTime requestTime)
    {
        List<ModificationStatement> statements = statement.getStatements();
        for (int i = 0; i < statements.size(); i++)
            check(statements.get(i), state.getClientState(), options.forStatement(i));
        return delegate.processBatch(statement, state, options, customPayload, requestTime);
    }

    private static void check(CQLStatement statement, ClientState client, QueryOptions options)
    {
        if (TABLES.isEmpty())
            return;
        if (statement instanceof BatchStatement)
        {
            // a BEGIN BATCH ... APPLY BATCH sent as one query string
            for (ModificationStatement m : ((BatchStatement) statement).getStatements())
                check(m, client, options);
            return;
        }
        String keyspace, table, what;
        if (statement instanceof ModificationStatement)
        {
            ModificationStatement m = (ModificationStatement) statement;
            if (!TABLES.contains(m.table()))
                return;
            StatementType type = type(m);
            if (type.isInsert())
            {
                boolean ownTtl = options != null
                                 && m.getTimeToLive(options) != m.metadata().params.defaultTimeToLive;
                if (!m.isTimestampSet() && !ownTtl)
                    return;
                what = "INSERT with its own TTL or timestamp";
            }
            else
            {
                what = type.name();
            }
            keyspace = m.keyspace();
            table = m.table();
        }
        else if (statement instanceof TruncateStatement)
        {
            TruncateStatement t = (TruncateStatement) statement;
            if (!TABLES.contains(t.name()))
                return;
            keyspace = t.keyspace();
            table = t.name();
            what = "TRUNCATE";
        }
        else
        {
            return;
        }
        AuthenticatedUser user = client.getUser();
        if (user != null && user.isSuper())
            return;
        throw new UnauthorizedException(String.format(
            "%s on %s.%s refused: the table is append-only (only a superuser may change or "
            + "remove its rows)", what, keyspace, table));
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
