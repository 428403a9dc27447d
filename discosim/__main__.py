from discosim.app.cli.main import main

raise SystemExit(main())
