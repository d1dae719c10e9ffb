package mysqldir

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestOutage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{sql.ErrNoRows, false},
		{&mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}, false},
		{fmt.Errorf("scan: %w", fmt.Errorf("converting")), false},
		{context.Canceled, false},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{driver.ErrBadConn, true},
		{mysql.ErrInvalidConn, true},
		{io.EOF, true},
		{context.DeadlineExceeded, true},
	} {
		if got := Outage(tc.err); got != tc.want {
			t.Errorf("Outage(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
