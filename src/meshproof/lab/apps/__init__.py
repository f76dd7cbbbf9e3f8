"""The sample applications' images as lab programs: helloworld and go-httpbin."""
