// Command sbc-sip-sidecar is the SIP registrar sidecar of a jambonz SBC.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/app"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/cli"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(config.Version)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "cli" {
		os.Exit(cli.Main(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	flags := flag.NewFlagSet("sbc-sip-sidecar", flag.ExitOnError)
	configFile := flags.String("config", "", "YAML config file used instead of MySQL (default $SIDECAR_CONFIG)")
	_ = flags.Parse(os.Args[1:])
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *configFile != "" {
		cfg.ConfigFile = *configFile
	}
	fmt.Fprint(os.Stderr, app.Banner(cfg))
	log := logging.New(os.Stderr, cfg.LogLevel, logging.Options{SourceLimit: cfg.LogSourceLimit})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("exiting", "err", err)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log.Info("stopped")
}
