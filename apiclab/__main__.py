from apiclab.cli.main import main

raise SystemExit(main())
